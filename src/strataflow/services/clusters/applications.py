"""A cluster's entries in its collections' `cluster_applications` (ClusterApplicationConfig)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError
from strataflow.store.tables import Cluster, Collection

DEFAULT_COOLDOWN_S = 3600


def application_entry(cluster_id: str, min_documents: int | None, cooldown_s: int | None) -> dict[str, Any]:
    """A ClusterApplicationConfig as stored on a collection."""
    return {
        "cluster_id": cluster_id,
        "auto_execute_on_batch": True,
        "min_document_threshold": min_documents,
        "cooldown_seconds": DEFAULT_COOLDOWN_S if cooldown_s is None else cooldown_s,
        "execution_phase": 2,
        "priority": 0,
    }


def check_auto_settings(min_documents: int | None, cooldown_s: int | None) -> None:
    if min_documents is not None and min_documents < 0:
        raise BadRequestError("auto_execute_min_documents must be >= 0", {"auto_execute_min_documents": min_documents})
    if cooldown_s is not None and cooldown_s < 0:
        raise BadRequestError(
            "auto_execute_cooldown_seconds must be >= 0", {"auto_execute_cooldown_seconds": cooldown_s}
        )


def attach(collections: list[Collection], entry: dict[str, Any]) -> None:
    """Add (or replace) the cluster's entry in each collection's cluster_applications."""
    for collection in collections:
        kept = [a for a in collection.cluster_applications or [] if a.get("cluster_id") != entry["cluster_id"]]
        collection.cluster_applications = [*kept, entry]


def detach(session: Session, cluster: Cluster) -> None:
    """Remove the cluster from every collection of its namespace that lists it."""
    for collection in session.scalars(select(Collection).where(Collection.namespace_id == cluster.namespace_id)):
        apps = collection.cluster_applications or []
        kept = [a for a in apps if not (isinstance(a, dict) and a.get("cluster_id") == cluster.cluster_id)]
        if len(kept) != len(apps):
            collection.cluster_applications = kept
