"""`expand`: what a document points at, resolved inline under its `_expanded` key.

Four names are lineage, not fields: `parent` (the document it was made from), `root_object`
(the bucket object at the root of its chain), `ancestors` (the chain, root first, parent last)
and `children` (documents made from it, at most 100). Any other name is a field path (dot
notation) whose value is a document id or a list of them, looked up across the namespace's
collections; a list keeps its order, and an id that names nothing shows as null. Expansion is
one level deep: an expanded document is not expanded again. At most 50 distinct field
references are resolved per request, so one read cannot fan out without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.paths import value_at
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents import lineage
from strataflow.services.documents.model import document_view
from strataflow.services.documents.namespace import get_documents
from strataflow.services.objects.view import object_view
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection

LINEAGE_NAMES = ("parent", "root_object", "ancestors", "children")
MAX_REFERENCES = 50
MAX_EXPAND_FIELDS = 20


def expand_names(value: list[str] | str | None) -> list[str]:
    """The names asked for, each once; the query string spells them comma-separated."""
    parts = value.split(",") if isinstance(value, str) else value or []
    names = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
    if len(names) > MAX_EXPAND_FIELDS:
        raise BadRequestError(f"expand takes at most {MAX_EXPAND_FIELDS} names", {"expand": names})
    bad = [n for n in names if any(not part for part in n.split("."))]
    if bad:
        raise BadRequestError(f"Invalid expand field path '{bad[0]}'", {"expand": bad})
    return names


def _ids_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


@dataclass
class Expander:
    """Resolves `names` for a page of documents, of any of `collections` (by id: a retriever's
    results come from several)."""

    session: Session
    index: DocumentIndex
    scope: NamespaceScope
    collections: dict[str, Collection]
    names: list[str]
    blobs: BlobStore | None = None

    def expanded(self, docs: list[StoredDocument]) -> list[dict[str, Any]]:
        """One `_expanded` mapping per document, in order."""
        fields = [n for n in self.names if n not in LINEAGE_NAMES]
        wanted = list(dict.fromkeys(i for doc in docs for f in fields for i in _ids_in(value_at(doc.payload, f))))
        if len(wanted) > MAX_REFERENCES:
            raise BadRequestError(
                f"expand resolves at most {MAX_REFERENCES} distinct references per request; "
                f"these documents hold {len(wanted)}",
                {"expand": fields, "references": len(wanted)},
            )
        found, _ = get_documents(self.session, self.index, self.scope, wanted) if wanted else ([], [])
        views = {d.document_id: self._view(d) for d in found}
        return [self._one(doc, fields, views) for doc in docs]

    def _one(self, doc: StoredDocument, fields: list[str], views: dict[str, dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.names:
            if name in fields:
                value = value_at(doc.payload, name)
                out[name] = [views.get(i) for i in _ids_in(value)] if isinstance(value, list) else views.get(value)
            else:
                out[name] = self._lineage[name](self, doc)
        return out

    def _collection(self, doc: StoredDocument) -> Collection:
        known = self.collections.get(doc.collection_id)
        if known is None:  # a collection the caller did not expect: looked up once, in this namespace
            known = self.collections[doc.collection_id] = get_collection(self.session, self.scope, doc.collection_id)
        return known

    def _view(self, doc: StoredDocument) -> dict[str, Any]:
        return document_view(doc, blobs=self.blobs)

    def _parent(self, doc: StoredDocument) -> dict[str, Any] | None:
        found = lineage.parent_of(self.session, self.index, self.scope, doc, self._collection(doc))
        return self._view(found[0]) if found else None

    def _root_object(self, doc: StoredDocument) -> dict[str, Any] | None:
        object_id = doc.lineage.get("root_object_id")
        row = lineage.find_object(self.session, self.scope, str(object_id)) if object_id else None
        return object_view(row, self.blobs) if row is not None else None

    def _ancestors(self, doc: StoredDocument) -> list[dict[str, Any]]:
        chain = lineage.document_ancestors(self.session, self.index, self.scope, self._collection(doc), doc.document_id)
        return [self._view(d) for d in chain]

    def _children(self, doc: StoredDocument) -> list[dict[str, Any]]:
        found = lineage.document_descendants(
            self.session, self.index, self.scope, self._collection(doc), doc.document_id
        )
        return [self._view(d) for d in found]

    _lineage: ClassVar[dict[str, Callable[[Expander, StoredDocument], Any]]] = {
        "parent": _parent,
        "root_object": _root_object,
        "ancestors": _ancestors,
        "children": _children,
    }
