"""Cluster definitions: create (every reference checked first), get, list, patch, delete."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import utcnow
from strataflow.errors import AlreadyExistsError, BadRequestError, ConflictError, not_found
from strataflow.ids import looks_like, new_id, random_token
from strataflow.index.store import DocumentIndex
from strataflow.schemas.clusters import CreateClusterRequest, ListClustersRequest, PatchClusterRequest
from strataflow.services.clusters.applications import application_entry, attach, detach
from strataflow.services.clusters.composite import check_sources
from strataflow.services.clusters.definition import build_config, check_filters, resolve_collections
from strataflow.services.clusters.output_collection import (
    build_output_collections,
    create_table,
    remove_output_collections,
)
from strataflow.services.clusters.rules import check_parameters, points_to_cluster
from strataflow.services.events.outbox import emit
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.filters import FieldMap
from strataflow.store.pagination import ListQuery, Page, PageRequest, list_page
from strataflow.store.tables import Cluster, ClusterRun, Collection

CLUSTER_FIELDS = FieldMap(
    columns={
        "cluster_id": Cluster.cluster_id,
        "cluster_name": Cluster.cluster_name,
        "description": Cluster.description,
        "cluster_type": Cluster.cluster_type,
        "created_at": Cluster.created_at,
        "updated_at": Cluster.updated_at,
    },
    json_columns={"metadata": Cluster.metadata_},
)
ACTIVE_RUN = (Status.PENDING, Status.PROCESSING)


def _check_name_free(session: Session, scope: NamespaceScope, name: str, except_id: str | None = None) -> None:
    if looks_like("cluster", name):
        raise BadRequestError("Cluster names may not start with 'clust_' (that prefix marks ids)")
    existing = session.scalar(
        select(Cluster.cluster_id).where(Cluster.namespace_id == scope.namespace_id, Cluster.cluster_name == name)
    )
    if existing is not None and existing != except_id:
        raise AlreadyExistsError(f"Cluster '{name}' already exists in this namespace", {"cluster_name": name})


def create_cluster(
    session: Session, scope: NamespaceScope, request: CreateClusterRequest, index: DocumentIndex | None = None
) -> Cluster:
    """Checked completely first. A vector cluster that does not enrich its sources gets an output
    collection (created here, with its table, when `index` is given)."""
    sources: list[Cluster] = []
    if request.source_cluster_ids:
        if request.vector_config is None:
            raise BadRequestError(
                "A composite cluster (source_cluster_ids) needs vector_config", {"field": "vector_config"}
            )
        uris = request.vector_config.feature_uris or [request.vector_config.feature_uri or ""]
        sources = check_sources(session, scope, request.source_cluster_ids, uris)
        if not request.collection_ids:  # the source clusters' input collections
            request = request.model_copy(
                update={"collection_ids": list(dict.fromkeys(c for s in sources for c in s.collection_ids))}
            )
    if not request.collection_ids:
        raise BadRequestError("A cluster needs at least one collection (collection_ids)")
    name = request.cluster_name or f"cluster_{random_token(8)}"
    _check_name_free(session, scope, name)
    collections = resolve_collections(session, scope, request.collection_ids)
    cluster_type, config = build_config(collections, request)
    if sources:  # its points are centroids: nothing to enrich, no output collection
        config.update({"source_cluster_ids": [s.cluster_id for s in sources], "enrich_source": False})
    now = utcnow()
    row = Cluster(
        cluster_id=new_id("cluster"),
        namespace_id=scope.namespace_id,
        cluster_name=name,
        description=request.description,
        cluster_type=cluster_type,
        collection_ids=[c.collection_id for c in collections],
        config=config,
        filters=request.filters or None,
        metadata_=request.metadata or {},
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    outputs: list[Collection] = []
    if index is not None and cluster_type == "vector" and not config.get("enrich_source") and not sources:
        outputs = build_output_collections(session, scope, row, collections, config)
        row.config = {**config, "output_collection_ids": [o.collection_id for o in outputs]}
        for output in outputs:
            session.add(output)
            create_table(index, output)
    if request.auto_execute_on_batch:
        attach(
            collections,
            application_entry(
                row.cluster_id, request.auto_execute_min_documents, request.auto_execute_cooldown_seconds
            ),
        )
    try:
        _emit(session, scope, "cluster.created", row)  # its flush may meet a concurrent create's name
        session.commit()
    except BaseException as exc:
        session.rollback()
        if index is not None:
            for output in outputs:
                index.drop_table(output.collection_id)
        if isinstance(exc, IntegrityError):  # a concurrent create took a name between the check and the commit
            raise AlreadyExistsError(
                f"Cluster '{name}' already exists in this namespace", {"cluster_name": name}
            ) from None
        raise
    return row


def get_cluster(session: Session, scope: NamespaceScope, identifier: str, *, for_update: bool = False) -> Cluster:
    """By id, or by name within the namespace."""
    column = Cluster.cluster_id if looks_like("cluster", identifier) else Cluster.cluster_name
    query = select(Cluster).where(Cluster.namespace_id == scope.namespace_id, column == identifier)
    if for_update:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise not_found("Cluster", identifier)
    return row


def list_clusters(
    session: Session, scope: NamespaceScope, request: ListClustersRequest, page: PageRequest
) -> tuple[Page, int]:
    return list_page(
        session,
        select(Cluster).where(Cluster.namespace_id == scope.namespace_id),
        CLUSTER_FIELDS,
        ListQuery.of(request),
        search_columns=(Cluster.cluster_name, Cluster.cluster_id, Cluster.description),
        tie_break=(Cluster.created_at.desc(), Cluster.cluster_id),
        page=page,
    )


def patch_cluster(session: Session, scope: NamespaceScope, identifier: str, request: PatchClusterRequest) -> Cluster:
    """Descriptive fields, filters, sample size and algorithm parameters; all checked before any is kept."""
    row = get_cluster(session, scope, identifier)
    changes = request.model_dump(exclude_unset=True)
    config = dict(row.config)
    if changes.get("source_cluster_ids"):
        if not config.get("source_cluster_ids"):
            raise BadRequestError("A cluster over collections cannot become composite; create a composite cluster")
        sources = check_sources(session, scope, changes["source_cluster_ids"], list(config.get("feature_uris") or []))
        config["source_cluster_ids"] = [s.cluster_id for s in sources]
    if changes.get("algorithm_params") is not None:
        if row.cluster_type != "vector":
            raise BadRequestError("algorithm_params apply to vector clusters only")
        config["algorithm_params"] = check_parameters(
            config["algorithm"],
            {"algorithm_params": {**config.get("algorithm_params", {}), **changes["algorithm_params"]}},
        )
    if changes.get("sample_size") is not None:
        if row.cluster_type == "vector":  # above the algorithm's limit: a 400, as at create
            points_to_cluster(str(config["algorithm"]), changes["sample_size"], changes["sample_size"])
        config["sample_size"] = changes["sample_size"]
    if request.face_cluster_merge is not None:  # null leaves the stored one
        if row.cluster_type != "vector":
            raise BadRequestError("face_cluster_merge applies to vector clusters only")
        config["face_cluster_merge"] = request.face_cluster_merge.model_dump()  # with its defaults
    if changes.get("layout_stability") is not None:
        config["layout_stability"] = changes["layout_stability"]
    if "llm_labeling" in changes:
        config["llm_labeling"] = changes["llm_labeling"]
    if changes.get("cluster_name") is not None:
        _check_name_free(session, scope, changes["cluster_name"], row.cluster_id)
        row.cluster_name = changes["cluster_name"]
    if "description" in changes:
        row.description = changes["description"]
    if changes.get("metadata") is not None:
        row.metadata_ = changes["metadata"]
    if "filters" in changes:
        check_filters([c for c in (session.get(Collection, i) for i in row.collection_ids) if c], changes["filters"])
        row.filters = changes["filters"] or None
    row.config = config
    row.updated_at = utcnow()
    _emit(session, scope, "cluster.updated", row)
    session.commit()
    return row


def delete_cluster(
    session: Session,
    blobs: BlobStore,
    scope: NamespaceScope,
    identifier: str,
    before_delete: Callable[[Cluster, ClusterRun | None], None] | None = None,
    index: DocumentIndex | None = None,
) -> str:
    """The definition, its runs and their stored results. Refused while a run is active (cancel it first).

    `before_delete(cluster, current_run)` runs once the delete is allowed and before anything is
    removed (the API removes the enrichment the current run wrote): if it fails, nothing is deleted.
    """
    row = get_cluster(session, scope, identifier, for_update=True)
    active = session.scalar(
        select(ClusterRun.run_id).where(ClusterRun.cluster_id == row.cluster_id, ClusterRun.status.in_(ACTIVE_RUN))
    )
    if active is not None:
        raise ConflictError(
            f"Cluster '{row.cluster_id}' has run '{active}' in progress; cancel it first", {"run_id": active}
        )
    cluster_id = row.cluster_id
    if before_delete is not None:
        before_delete(row, session.get(ClusterRun, row.current_run_id) if row.current_run_id else None)
    detach(session, row)
    removed = remove_output_collections(session, row) if index is not None else []
    session.execute(delete(ClusterRun).where(ClusterRun.cluster_id == cluster_id))
    _emit(session, scope, "cluster.deleted", row)
    session.delete(row)
    session.commit()
    if index is not None:
        for collection_id in removed:
            index.drop_table(collection_id)
    blobs.delete_prefix(artifact_prefix(scope.namespace_id, cluster_id))
    return cluster_id


def _emit(session: Session, scope: NamespaceScope, event_type: str, row: Cluster) -> None:
    payload = {
        "cluster_id": row.cluster_id,
        "cluster_name": row.cluster_name,
        "cluster_type": row.cluster_type,
        "collection_ids": list(row.collection_ids or []),
        "namespace_id": scope.namespace_id,
    }
    emit(
        session,
        event_type,
        org_id=scope.org_id,
        namespace_id=scope.namespace_id,
        resource_id=row.cluster_id,
        payload=payload,
    )


def artifact_prefix(namespace_id: str, cluster_id: str) -> str:
    return f"clusters/{namespace_id}/{cluster_id}/"
