"""The stage catalogue and the stage configuration shape (StageConfig) as stored and echoed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.retrieval import search_stages as search
from strataflow.retrieval import shaping_stages as shaping
from strataflow.retrieval import taxonomy_stage
from strataflow.retrieval.context import StageContext
from strataflow.retrieval.results import Hit

StageFunction = Callable[[StageContext, dict[str, Any], "list[Hit] | None"], list[Hit]]


@dataclass(frozen=True)
class StageKind:
    run: StageFunction
    stage_type: str  # filter | sort | reduce | apply | enrich (the SDK's StageType)
    searches: bool = False  # finds documents (may start a pipeline) rather than reshaping hits


STAGES: dict[str, StageKind] = {
    "feature_search": StageKind(search.feature_search, "filter", searches=True),
    "text_search": StageKind(search.text_search, "filter", searches=True),
    "hybrid_search": StageKind(search.hybrid_search, "filter", searches=True),
    "attribute_filter": StageKind(shaping.attribute_filter, "filter"),
    "sort_attribute": StageKind(shaping.sort_attribute, "sort"),
    "limit": StageKind(shaping.limit, "filter"),
    "deduplicate": StageKind(shaping.deduplicate, "filter"),
    "group_by": StageKind(shaping.group_by, "reduce"),
    "mmr": StageKind(shaping.mmr, "sort"),
    "taxonomy_enrich": StageKind(taxonomy_stage.taxonomy_enrich, "apply"),
}
ALIASES = {"full_text_search": "text_search", "fulltext_search": "text_search", "hybrid": "hybrid_search"}


def stage_kind(stage_id: str, position: int) -> StageKind:
    kind = STAGES.get(ALIASES.get(stage_id, stage_id))
    if kind is None:
        raise BadRequestError(
            f"Unknown stage_id '{stage_id}' in stage {position}", {"stage_id": stage_id, "supported": sorted(STAGES)}
        )
    return kind


def normalise_stage(raw: dict[str, Any], position: int) -> dict[str, Any]:
    """A StageConfig in the one shape we store and echo: `config` with stage_id and parameters,
    and the same parameters at the top level (newer SDKs read them there)."""
    if not isinstance(raw, dict):
        raise BadRequestError(f"Stage {position} must be an object")
    config: dict[str, Any] = raw["config"] if isinstance(raw.get("config"), dict) else {}
    stage_id = config.get("stage_id") or raw.get("stage_id")
    if not isinstance(stage_id, str) or not stage_id:
        raise BadRequestError(f"Stage {position} needs config.stage_id", {"stage": position})
    stage_id = ALIASES.get(stage_id, stage_id)
    kind = stage_kind(stage_id, position)
    parameters = config.get("parameters", raw.get("parameters")) or {}
    if not isinstance(parameters, dict):
        raise BadRequestError(f"Stage {position}: parameters must be an object", {"stage": position})
    name = raw.get("stage_name") or stage_id
    if not isinstance(name, str):
        raise BadRequestError(f"Stage {position}: stage_name must be a string", {"stage": position})
    return {
        "stage_name": name,
        "stage_type": raw.get("stage_type") or kind.stage_type,
        "config": {"stage_id": stage_id, "parameters": parameters},
        "parameters": parameters,
        "batch_size": raw.get("batch_size"),
        "description": raw.get("description"),
    }


def normalise_stages(stages: list[Any]) -> list[dict[str, Any]]:
    if not stages:
        raise BadRequestError("A retriever needs at least one stage")
    normalised = [normalise_stage(s, i) for i, s in enumerate(stages)]
    names = [s["stage_name"] for s in normalised]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadRequestError(
            f"Stage names must be unique; repeated: {', '.join(duplicates)}", {"duplicates": duplicates}
        )
    return normalised


def literal_feature_uris(stages: list[dict[str, Any]]) -> list[str]:
    """Feature URIs written out in the stages (not templates): checked when a retriever is saved."""
    uris = []
    for stage in stages:
        params = stage["parameters"]
        candidates = [s.get("feature_uri") for s in params.get("searches") or [] if isinstance(s, dict)]
        candidates.append(params.get("feature_uri"))
        uris += [u for u in candidates if isinstance(u, str) and "{{" not in u]
    return uris
