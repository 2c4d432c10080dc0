"""Clone: a create request built from an existing collection's configuration and the caller's overrides.

The clone is created by `crud.create_collection` like any other collection, so every rule of a create
(name, source and cycles, extractor, mappings, applications) applies to it. It copies configuration
only: the source's documents stay where they are, and the clone fills when a batch or trigger runs it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from strataflow.schemas.collections import CloneCollectionRequest, CreateCollectionRequest, SourceConfig
from strataflow.schemas.validation import validate_as
from strataflow.services.collections.sources import get_collection, resolve_source
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection


def clone_request(
    session: Session, scope: NamespaceScope, identifier: str, request: CloneCollectionRequest
) -> tuple[Collection, CreateCollectionRequest]:
    """The source collection, and the create request of its clone (validated as a create body)."""
    original = get_collection(session, scope, identifier)
    overrides = request.model_dump(exclude_none=True)
    body: dict[str, Any] = {**_copied_configuration(original), **overrides}
    if "source" not in overrides and _narrowed(session, scope, original):
        # Only a schema the creator narrowed is passed on: the full one is the source's to give again.
        body["input_schema"] = dict(original.input_schema)
    return original, validate_as(CreateCollectionRequest, body)


def _narrowed(session: Session, scope: NamespaceScope, original: Collection) -> bool:
    """Whether `original` reads fewer fields than its source offers (its create gave an input_schema)."""
    offered = resolve_source(session, scope, SourceConfig.model_validate(original.source), original.collection_name)
    return bool(original.input_schema != offered.input_schema)


def _copied_configuration(original: Collection) -> dict[str, Any]:
    """What a create needs to rebuild `original`: its stored source and extractor round-trip as input."""
    return {
        "description": original.description,
        "source": dict(original.source),
        "feature_extractor": dict(original.feature_extractor),
        "enabled": original.enabled,
        "metadata": dict(original.metadata_ or {}),
        "taxonomy_applications": original.taxonomy_applications,
        "cluster_applications": original.cluster_applications,
        "alert_applications": original.alert_applications,
    }
