"""Taxonomies: create, get, list, patch, delete, versions and clone.

The config is checked completely (checks.py) before anything is saved. PATCH changes only
descriptive fields; a new config is a new version (the old one stays listed), or a clone.
Deleting is refused while a collection applies the taxonomy or an apply task for it runs,
so no collection is ever left holding half of its enrichment.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import isoformat, utcnow
from strataflow.errors import AlreadyExistsError, BadRequestError, ConflictError, not_found
from strataflow.ids import looks_like, new_id
from strataflow.schemas.taxonomies import (
    CloneTaxonomyRequest,
    CreateTaxonomyRequest,
    CreateVersionRequest,
    ListTaxonomiesRequest,
    PatchTaxonomyRequest,
)
from strataflow.schemas.taxonomies import TaxonomyConfig as ConfigShape
from strataflow.services.documents.crud import where_of
from strataflow.services.events.outbox import emit
from strataflow.services.taxonomies import applications
from strataflow.services.taxonomies.checks import TaxonomyConfig, check_config, check_target
from strataflow.services.taxonomies.plans import DEFAULT_STYLE, STYLES, field_prefix
from strataflow.services.taxonomies.scoping import predicate
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import TERMINAL, TaskType
from strataflow.store.filters import FieldMap
from strataflow.store.pagination import ListQuery, Page, PageRequest, list_page
from strataflow.store.tables import Collection, Task, Taxonomy, TaxonomyVersion

TAXONOMY_FIELDS = FieldMap(
    columns={
        "taxonomy_id": Taxonomy.taxonomy_id,
        "taxonomy_name": Taxonomy.taxonomy_name,
        "description": Taxonomy.description,
        "version": Taxonomy.version,
        "created_at": Taxonomy.created_at,
        "updated_at": Taxonomy.updated_at,
    },
    json_columns={"config": Taxonomy.config, "metadata": Taxonomy.metadata_},
)


def _check_name_free(session: Session, scope: NamespaceScope, name: str, except_id: str | None = None) -> None:
    if looks_like("taxonomy", name):
        raise BadRequestError("Taxonomy names may not start with 'tax_' (that prefix marks ids)")
    existing = session.scalar(
        select(Taxonomy.taxonomy_id).where(Taxonomy.namespace_id == scope.namespace_id, Taxonomy.taxonomy_name == name)
    )
    if existing is not None and existing != except_id:
        raise AlreadyExistsError(f"Taxonomy '{name}' already exists in this namespace", {"taxonomy_name": name})


def _save(
    session: Session, row: Taxonomy, scope: NamespaceScope | None = None, event_type: str | None = None
) -> Taxonomy:
    try:
        if scope is not None and event_type is not None:
            _emit(session, scope, event_type, row)  # its flush may meet a concurrent create's name
        session.commit()
    except IntegrityError:  # a concurrent create took the name between the check and the commit
        session.rollback()
        raise AlreadyExistsError(
            f"Taxonomy '{row.taxonomy_name}' already exists in this namespace", {"taxonomy_name": row.taxonomy_name}
        ) from None
    return row


def new_taxonomy(
    session: Session,
    scope: NamespaceScope,
    name: str,
    description: str | None,
    config: TaxonomyConfig,
    metadata: dict[str, Any] | None,
    blobs: BlobStore | None = None,
) -> Taxonomy:
    _check_name_free(session, scope, name)
    stored = check_config(session, scope, config, blobs)
    now = utcnow()
    row = Taxonomy(
        taxonomy_id=new_id("taxonomy"),
        namespace_id=scope.namespace_id,
        taxonomy_name=name,
        description=description,
        config=stored,
        metadata_=metadata or {},
        version=1,
        nodes=[] if stored.get("path_field") else None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.add(
        TaxonomyVersion(
            taxonomy_id=row.taxonomy_id,
            version=1,
            taxonomy_name=name,
            description=description,
            config=stored,
            created_at=now,
        )
    )
    return _save(session, row, scope, "taxonomy.created")


def create_taxonomy(
    session: Session, scope: NamespaceScope, request: CreateTaxonomyRequest, blobs: BlobStore | None = None
) -> Taxonomy:
    return new_taxonomy(
        session, scope, request.taxonomy_name, request.description, request.config, request.metadata, blobs
    )


def get_taxonomy(session: Session, scope: NamespaceScope, identifier: str, lock: bool = False) -> Taxonomy:
    """By id, or by name within the namespace. `lock` holds the row until the commit (PostgreSQL), so a
    delete and an apply of the same taxonomy cannot both pass their checks."""
    column = Taxonomy.taxonomy_id if looks_like("taxonomy", identifier) else Taxonomy.taxonomy_name
    query = select(Taxonomy).where(Taxonomy.namespace_id == scope.namespace_id, column == identifier)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise not_found("Taxonomy", identifier)
    return row


def list_taxonomies(
    session: Session, scope: NamespaceScope, request: ListTaxonomiesRequest, page: PageRequest
) -> tuple[Page, int]:
    return list_page(
        session,
        select(Taxonomy).where(Taxonomy.namespace_id == scope.namespace_id),
        TAXONOMY_FIELDS,
        ListQuery.of(request),
        search_columns=(Taxonomy.taxonomy_name, Taxonomy.taxonomy_id, Taxonomy.description),
        tie_break=(Taxonomy.created_at.desc(), Taxonomy.taxonomy_id),
        page=page,
    )


def patch_taxonomy(session: Session, scope: NamespaceScope, identifier: str, request: PatchTaxonomyRequest) -> Taxonomy:
    """Name, description and metadata only; the config changes by a new version."""
    row = get_taxonomy(session, scope, identifier)
    changes = request.model_dump(exclude_unset=True)
    if changes.get("taxonomy_name") is not None:
        _check_name_free(session, scope, changes["taxonomy_name"], row.taxonomy_id)
        row.taxonomy_name = changes["taxonomy_name"]
    if "description" in changes:
        row.description = changes["description"]
    if changes.get("metadata") is not None:
        row.metadata_ = changes["metadata"]
    row.updated_at = utcnow()
    _emit(session, scope, "taxonomy.updated", row)
    session.commit()
    return row


def create_version(
    session: Session,
    scope: NamespaceScope,
    identifier: str,
    request: CreateVersionRequest,
    blobs: BlobStore | None = None,
) -> Taxonomy:
    """A new config as the next version. Collections applying the taxonomy get it on their next
    write or apply-taxonomy run, which replaces the old version's values (never mixes them)."""
    row = get_taxonomy(session, scope, identifier, lock=True)
    stored = check_config(session, scope, request.config, blobs)
    if stored.get("taxonomy_type") != row.config.get("taxonomy_type"):
        raise BadRequestError(
            "A new version keeps the taxonomy_type; clone to change it",
            {"taxonomy_type": row.config.get("taxonomy_type")},
        )
    # Every collection applying it gets the new version at once: it must be able to, or nothing changes.
    for collection_id in applying_collections(session, row.taxonomy_id, scope.namespace_id):
        collection = session.get(Collection, collection_id)
        application = applications.application_of(collection, row.taxonomy_id) if collection else None
        if collection is None or application is None:
            continue
        applications.refuse_cycle(session, stored, collection, row.taxonomy_name)
        try:
            check_target(stored, applications.written_collection(session, collection, application))
        except BadRequestError as exc:
            raise BadRequestError(
                f"The new version cannot be applied to collection '{collection.collection_name}', which "
                f"applies this taxonomy: {exc.message}",
                {"collection_id": collection.collection_id, **(exc.details or {})},
            ) from None
    row.version += 1
    row.config = stored
    if request.description is not None:
        row.description = request.description
    row.updated_at = utcnow()
    session.add(
        TaxonomyVersion(
            taxonomy_id=row.taxonomy_id,
            version=row.version,
            taxonomy_name=row.taxonomy_name,
            description=row.description,
            config=stored,
            created_at=row.updated_at,
        )
    )
    _emit(session, scope, "taxonomy.updated", row)
    session.commit()
    return row


def list_versions(session: Session, scope: NamespaceScope, identifier: str) -> list[TaxonomyVersion]:
    row = get_taxonomy(session, scope, identifier)
    return list(
        session.scalars(
            select(TaxonomyVersion)
            .where(TaxonomyVersion.taxonomy_id == row.taxonomy_id)
            .order_by(TaxonomyVersion.version.desc())
        )
    )


def version_config(session: Session, taxonomy: Taxonomy, version: int | None) -> tuple[dict[str, Any], int]:
    if version is None or version == taxonomy.version:
        return dict(taxonomy.config), taxonomy.version
    row = session.get(TaxonomyVersion, (taxonomy.taxonomy_id, version))
    if row is None:
        raise not_found("Taxonomy version", f"{taxonomy.taxonomy_id}@{version}")
    return dict(row.config), version


def clone_taxonomy(
    session: Session,
    scope: NamespaceScope,
    identifier: str,
    request: CloneTaxonomyRequest,
    blobs: BlobStore | None = None,
) -> Taxonomy:
    source = get_taxonomy(session, scope, identifier)
    config = request.config
    if config is None:
        config = TypeAdapter(ConfigShape).validate_python(source.config)
    description = request.description if request.description is not None else source.description
    return new_taxonomy(session, scope, request.taxonomy_name, description, config, dict(source.metadata_ or {}), blobs)


def applying_collections(session: Session, taxonomy_id: str, namespace_id: str) -> list[str]:
    rows = session.scalars(select(Collection).where(Collection.namespace_id == namespace_id))
    return sorted(
        c.collection_id for c in rows if any(a.get("taxonomy_id") == taxonomy_id for a in c.taxonomy_applications or [])
    )


def running_applies(session: Session, taxonomy_id: str) -> list[str]:
    tasks = session.scalars(
        select(Task).where(
            Task.task_type == TaskType.TAXONOMIES_MATERIALIZE.value, Task.status.not_in([s.value for s in TERMINAL])
        )
    )
    return [t.task_id for t in tasks if (t.additional_data or {}).get("taxonomy_id") == taxonomy_id]


def delete_taxonomy(session: Session, scope: NamespaceScope, identifier: str) -> str:
    row = get_taxonomy(session, scope, identifier, lock=True)
    users = applying_collections(session, row.taxonomy_id, scope.namespace_id)
    if users:
        raise ConflictError(
            f"Taxonomy '{row.taxonomy_name}' is applied by {len(users)} collection(s); remove it "
            "from their taxonomy_applications first",
            {"collection_ids": users},
        )
    tasks = running_applies(session, row.taxonomy_id)
    if tasks:
        raise ConflictError(
            f"Taxonomy '{row.taxonomy_name}' is being applied (task {tasks[0]}); wait for it or kill the task first",
            {"task_ids": tasks},
        )
    _emit(session, scope, "taxonomy.deleted", row)
    session.delete(row)
    session.commit()
    return row.taxonomy_id


def _emit(session: Session, scope: NamespaceScope, event_type: str, row: Taxonomy) -> None:
    payload = {
        "taxonomy_id": row.taxonomy_id,
        "taxonomy_name": row.taxonomy_name,
        "taxonomy_type": (row.config or {}).get("taxonomy_type"),
        "version": row.version,
        "namespace_id": scope.namespace_id,
    }
    emit(
        session,
        event_type,
        org_id=scope.org_id,
        namespace_id=scope.namespace_id,
        resource_id=row.taxonomy_id,
        payload=payload,
    )


def taxonomy_view(row: Taxonomy) -> dict[str, Any]:
    """TaxonomyResponse / TaxonomyModelOutput."""
    config = dict(row.config)
    return {
        "taxonomy_id": row.taxonomy_id,
        "version": row.version,
        "taxonomy_name": row.taxonomy_name,
        "description": row.description,
        "retriever_id": config.get("retriever_id"),
        "input_mappings": config.get("input_mappings"),
        "config": config,
        "nodes": list(row.nodes) if row.nodes is not None else None,
        "ready": True,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "metadata": dict(row.metadata_ or {}),
    }


def version_view(row: TaxonomyVersion, taxonomy: Taxonomy) -> dict[str, Any]:
    config = dict(row.config)
    return {
        "taxonomy_id": row.taxonomy_id,
        "version": row.version,
        "taxonomy_name": row.taxonomy_name,
        "description": row.description,
        "retriever_id": config.get("retriever_id"),
        "input_mappings": config.get("input_mappings"),
        "config": config,
        "nodes": None,
        "ready": True,
        "created_at": isoformat(row.created_at),
        "metadata": dict(taxonomy.metadata_ or {}),
    }


def list_stats(views: list[dict[str, Any]]) -> dict[str, int]:
    kinds = [v["config"].get("taxonomy_type", "flat") for v in views]
    return {
        "total_taxonomies": len(views),
        "flat_taxonomies": kinds.count("flat"),
        "hierarchical_taxonomies": kinds.count("hierarchical"),
        "taxonomies_with_retrievers": sum(
            1 for v in views if v["config"].get("retriever_id") or v["config"].get("hierarchical_nodes")
        ),
    }


def check_applications(session: Session, scope: NamespaceScope, collection: Collection) -> None:
    """A collection's taxonomy_applications: each taxonomy exists here and can read the documents it
    enriches (this collection's, or its target's), the target holds this collection's taxonomy
    output, and the taxonomy's nodes are not written from this collection (a cycle).

    Stored with taxonomy ids (a name given is resolved), so a rename changes nothing.
    """
    stored = []
    seen: set[str] = set()
    for raw in collection.taxonomy_applications or []:
        if not isinstance(raw, dict) or not raw.get("taxonomy_id"):
            raise BadRequestError("Each taxonomy application needs a taxonomy_id", {"application": raw})
        taxonomy = get_taxonomy(session, scope, str(raw["taxonomy_id"]))
        if taxonomy.taxonomy_id in seen:
            raise BadRequestError(
                f"Taxonomy '{taxonomy.taxonomy_name}' is applied twice; a collection applies a taxonomy once",
                {"taxonomy_id": taxonomy.taxonomy_id},
            )
        seen.add(taxonomy.taxonomy_id)
        if raw.get("execution_mode") not in (None, "materialize"):
            raise BadRequestError("execution_mode must be 'materialize'", {"execution_mode": raw["execution_mode"]})
        style = raw.get("hierarchical_enrichment_style")
        if style is not None and style not in STYLES:
            raise BadRequestError(
                f"hierarchical_enrichment_style must be one of {', '.join(STYLES)}",
                {"hierarchical_enrichment_style": style},
            )
        application = {**raw, "taxonomy_id": taxonomy.taxonomy_id}
        target = applications.written_collection(session, collection, application)
        if target is not collection:
            applications.check_target_collection(collection, target)
            application["target_collection_id"] = target.collection_id
        else:
            application.pop("target_collection_id", None)  # naming itself: in place, stored as such
        config = dict(taxonomy.config)
        applications.refuse_cycle(session, config, collection, taxonomy.taxonomy_name)
        check_target(config, target)
        predicate(raw.get("scroll_filters"))  # the filter tree is checked now (the index's rules)
        where_of(target, raw.get("scroll_filters"))
        stored.append(application)
        # The fields it writes join the written collection's output schema (never leave it: readers
        # downstream may rely on them).
        properties = dict((target.output_schema or {}).get("properties", {}))
        fields = enriched_fields(session, config, taxonomy.taxonomy_name, style)
        added = {k: v for k, v in fields.items() if k not in properties}
        if added:
            target.output_schema = {**(target.output_schema or {}), "properties": {**properties, **added}}
    if collection.taxonomy_applications is not None:
        collection.taxonomy_applications = stored


def enriched_fields(
    session: Session, config: dict[str, Any], taxonomy_name: str = "", style: str | None = None
) -> dict[str, dict[str, Any]]:
    """The output-schema entries of the fields a taxonomy writes, typed as in its nodes (a hierarchy
    adds the fields of its hierarchical_enrichment_style)."""
    sources: list[tuple[str, list[dict[str, Any]] | None]] = []
    if config.get("taxonomy_type", "flat") == "flat":
        source = config["source_collection"]
        sources.append((source["collection_id"], source.get("enrichment_fields")))
    for node in config.get("hierarchical_nodes") or []:
        sources.append((node["collection_id"], node.get("enrichment_fields") or []))
    found: dict[str, dict[str, Any]] = {}
    for collection_id, fields in sources:
        node_collection = session.get(Collection, collection_id)
        if node_collection is None:
            continue
        vectors = {d["index"]["name"] for d in node_collection.vector_indexes}
        properties = {
            k: v for k, v in (node_collection.output_schema or {}).get("properties", {}).items() if k not in vectors
        }
        specs = fields if fields is not None else [{"field_path": k} for k in properties]
        for spec in specs:
            shape = dict(properties.get(spec["field_path"].split(".")[0]) or {"type": "string"})
            if spec.get("merge_mode") == "append":
                shape = {"type": "array", "items": {"type": shape.get("type", "string")}}
            found[spec.get("target_field") or spec["field_path"]] = shape
    if config.get("taxonomy_type", "flat") == "hierarchical":
        found.update(style_fields(config, field_prefix(taxonomy_name), style or DEFAULT_STYLE))
    return found


def style_fields(config: dict[str, Any], prefix: str, style: str) -> dict[str, dict[str, Any]]:
    """The summary and per-tier fields of a hierarchy (the tiers of an explicit one: its depth)."""
    found: dict[str, dict[str, Any]] = {}
    if style in ("best_match", "combined"):
        found.update(
            {
                f"{prefix}_id": {"type": "string"},
                f"{prefix}_name": {"type": "string"},
                f"{prefix}_path": {"type": "array", "items": {"type": "string"}},
                f"{prefix}_score": {"type": "number"},
            }
        )
    nodes = config.get("hierarchical_nodes") or []
    if style in ("full_chain", "combined") and nodes:
        parents = {n["collection_id"]: n.get("parent_collection_id") for n in nodes}

        def depth(key: str | None) -> int:
            n = 0
            while key is not None and n <= len(parents):
                key, n = parents.get(key), n + 1
            return n

        for tier in range(1, max(depth(k) for k in parents) + 1):
            found[f"{prefix}_tier{tier}_id"] = {"type": "string"}
            found[f"{prefix}_tier{tier}_name"] = {"type": "string"}
            found[f"{prefix}_tier{tier}_score"] = {"type": "number"}
    return found
