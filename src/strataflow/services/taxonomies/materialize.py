"""Materialised enrichment: a collection's taxonomy_applications, run over documents being written.

The batch engine hands every chunk of documents it is about to write to a CollectionEnricher;
the documents are enriched in memory and written once, enriched, by the same upsert that
writes them. So the next tier and every retriever see enriched documents, a re-run (exactly
once, by deterministic id) rewrites the same enrichment, and no document is ever stored
half-enriched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.services.taxonomies import applications, enrichment
from strataflow.services.taxonomies.join import JoinPlan, Match, Subject, path_nodes, safe_match
from strataflow.services.taxonomies.plans import join_plan
from strataflow.services.taxonomies.scoping import predicate
from strataflow.store.db import Database
from strataflow.store.tables import Collection, Taxonomy

log = logging.getLogger("strataflow.taxonomies")


def application_plans(session: Session, collection: Collection) -> list[JoinPlan]:
    """The plans of every application whose output is this collection's documents, in running order."""
    plans = []
    for application in applications.enriching(session, collection):
        taxonomy = session.get(Taxonomy, application["taxonomy_id"])
        if taxonomy is None:
            raise BadRequestError(
                f"Collection '{collection.collection_id}' is enriched by taxonomy "
                f"'{application['taxonomy_id']}', which does not exist",
                {"taxonomy_id": application["taxonomy_id"]},
            )
        style = application.get("hierarchical_enrichment_style")
        filters = application.get("scroll_filters")
        config = dict(taxonomy.config)
        plans.append(join_plan(session, taxonomy, config, taxonomy.version, collection, style, filters))
    return plans


def enrich_documents(
    index: DocumentIndex, plan: JoinPlan, documents: Iterable[StoredDocument], parallelism: int = 1
) -> tuple[dict[str, int], list[list[str]]]:
    """Each document joined and its values for this taxonomy replaced, in memory.

    With `parallelism` > 1 the joins (read-only searches, mostly in LanceDB's native code, which
    runs without the GIL) run on that many threads; the documents are then changed in order, here.
    Returns counts (processed, enriched, errors) and the paths a path hierarchy met.
    """
    counts = {"processed": 0, "enriched": 0, "errors": 0}
    paths: list[list[str]] = []
    selects = predicate(plan.filters)
    docs = [d for d in documents if selects is None or selects(d)]  # the others are left as they are

    def join(doc: StoredDocument) -> tuple[list[Match], str | None]:
        return safe_match(plan, index, Subject(doc.document_id, doc.payload, dict(doc.vectors)))

    if parallelism > 1 and len(docs) > 1:
        with ThreadPoolExecutor(max_workers=min(parallelism, len(docs)), thread_name_prefix="taxonomy-join") as pool:
            joined = list(pool.map(join, docs))
    else:
        joined = [join(doc) for doc in docs]
    for doc, (matches, error) in zip(docs, joined, strict=True):
        enrichment.apply(doc.payload, doc.internal, plan, matches, error)
        counts["processed"] += 1
        counts["enriched"] += 1 if matches else 0
        if error:
            counts["errors"] += 1
            log.warning(
                "taxonomy join failed",
                extra={"taxonomy_id": plan.taxonomy_id, "document_id": doc.document_id, "error": error},
            )
        if plan.path_field is not None and matches:
            paths.append(matches[0].path)
    return counts, paths


def record_path_nodes(db: Database, taxonomy_id: str, paths: list[list[str]]) -> None:
    """Add the prefixes of `paths` to the taxonomy's `nodes` (TaxonomyPathNode), each once."""
    if not paths:
        return
    with db.transaction() as session:
        row = session.get(Taxonomy, taxonomy_id, with_for_update=not db.is_sqlite)
        if row is None:
            return
        nodes = list(row.nodes or [])
        known = {n["node_id"] for n in nodes}
        for path in paths:
            for node in path_nodes(path):
                if node["node_id"] not in known:
                    known.add(node["node_id"])
                    nodes.append(node)
        row.nodes = nodes


@dataclass
class CollectionEnricher:
    """Runs a collection's taxonomy applications over each chunk of documents before it is written.

    Before each chunk it reads the versions of its taxonomies (one small query): a new version
    made while the batch runs is used from the next chunk on, so the batch does not go on
    writing the old version's values after the re-apply task has passed."""

    db: Database
    index: DocumentIndex
    plans: list[JoinPlan]
    collection_id: str = ""

    def __call__(self, documents: list[StoredDocument]) -> None:
        self._refresh()
        for plan in self.plans:
            _, paths = enrich_documents(self.index, plan, documents)
            record_path_nodes(self.db, plan.taxonomy_id, paths)

    def _refresh(self) -> None:
        if not self.collection_id:
            return
        with self.db.read_session() as session:
            ids = [p.taxonomy_id for p in self.plans]
            query = select(Taxonomy.taxonomy_id, Taxonomy.version).where(Taxonomy.taxonomy_id.in_(ids))
            current = {str(row[0]): int(row[1]) for row in session.execute(query)}
            if all(current.get(p.taxonomy_id) == p.version for p in self.plans):
                return
            collection = session.get(Collection, self.collection_id)
            if collection is None:
                return
            self.plans = application_plans(session, collection)
            session.expunge_all()


def collection_enricher(db: Database, index: DocumentIndex, collection: Collection) -> CollectionEnricher | None:
    """The enricher of a collection whose documents taxonomies enrich; None when none does."""
    with db.read_session() as session:
        plans = application_plans(session, collection)
        session.expunge_all()
    return CollectionEnricher(db, index, plans, collection.collection_id) if plans else None
