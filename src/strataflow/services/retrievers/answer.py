"""What an execute asks of its answer beyond the run: an explain plan, expanded references, a write-back.

All three are checked before the first stage runs (a bad `expand`, an unknown target
collection, a write-back asked of a stream: a 4xx with nothing run), and applied to the
result once the run completes, the same for a JSON answer and a stream's completion event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.pipeline import Execution
from strataflow.schemas.retrievers import ExecuteRetrieverRequest
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents import events
from strataflow.services.documents.expansion import Expander, expand_names
from strataflow.services.retrievers.explain import executed_plan
from strataflow.services.retrievers.write_back import write_results
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.db import Database
from strataflow.store.tables import Collection


@dataclass
class AnswerOptions:
    db: Database
    index: DocumentIndex
    explain: bool = False
    expander: Expander | None = None
    target: Collection | None = None

    def finish(self, run: Execution, result: dict[str, Any]) -> None:
        """Add what was asked to a completed run's result (in place)."""
        documents: list[dict[str, Any]] = result.get("documents") or []
        if self.target is not None:
            written = result["written_to"] = write_results(self.index, self.target, run, documents)
            events.documents_batch(self.db, self.target, "documents.updated.batch", written["document_ids"])
        if self.expander is not None:
            self._expand(documents, self.expander)
        if self.explain:
            result["explain_plan"] = executed_plan(run)
        # One store, read after every acknowledged write: there is no replica to lag behind.
        result["consistency_mode"] = "strong"

    def _expand(self, documents: list[dict[str, Any]], expander: Expander) -> None:
        stored: dict[tuple[str, str], StoredDocument] = {}
        for collection_id in {d["collection_id"] for d in documents}:
            ids = [d["document_id"] for d in documents if d["collection_id"] == collection_id]
            stored.update(((collection_id, s.document_id), s) for s in self.index.get_many(collection_id, ids))
        shown = [(view, doc) for view in documents if (doc := stored.get((view["collection_id"], view["document_id"])))]
        for (view, _), expanded in zip(shown, expander.expanded([doc for _, doc in shown]), strict=True):
            view["_expanded"] = expanded


def answer_options(
    session: Session,
    db: Database,
    index: DocumentIndex,
    scope: NamespaceScope,
    run: Execution,
    request: ExecuteRetrieverRequest,
    *,
    explain: bool,
    blobs: BlobStore | None,
) -> AnswerOptions:
    """The request's options, checked (before anything runs)."""
    target = None
    if request.target_collection_id:
        if request.stream:
            raise BadRequestError("target_collection_id cannot be combined with stream=true")
        target = get_collection(session, scope, request.target_collection_id)
    names = expand_names(request.expand)
    collections = {c.collection_id: c for c in [*run.collections, *run.extra_collections.values()]}
    expander = Expander(session, index, scope, collections, names, blobs) if names else None
    return AnswerOptions(db, index, explain or request.explain, expander, target)
