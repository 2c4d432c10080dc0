"""The preprocessing steps a vector cluster may ask for (VectorBasedConfigInput.preprocessing_steps).

Pure rules, no I/O: checked at create; the engine applies them (engine/clusters/preprocess.py).
`none` and `whitening` are linear, so they also run on streamed (mini-batch) k-means; `tsne`
embeds the points it is given and nothing else, so it runs only in memory, on at most
`TSNE_MAX_POINTS`. `umap` needs umap-learn, which this server does not ship: a 400 says so.
"""

from __future__ import annotations

from typing import Any

from strataflow.errors import BadRequestError

TSNE_MAX_POINTS = 10_000
_STEPS: dict[str, dict[str, Any]] = {
    "none": {},
    "whitening": {"regularization": 1e-5},
    "tsne": {"n_components": 2, "random_state": 42, "perplexity": 30.0, "learning_rate": 200.0},
}


def check_steps(steps: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The steps with their defaults filled in; an unknown or unavailable step, or a bad value, is a 400."""
    checked = []
    for position, step in enumerate(steps or []):
        method = str(step.get("method") or "")
        if method == "umap":
            raise BadRequestError(
                "Preprocessing step 'umap' needs umap-learn, which this server does not ship; "
                "use 'whitening' (linear, any size) or 'tsne' (in memory, up to "
                f"{TSNE_MAX_POINTS:,} points)",
                {"step": position, "method": method},
            )
        if method not in _STEPS:
            raise BadRequestError(
                f"Unknown preprocessing method '{method}'",
                {"step": position, "available": sorted(_STEPS), "not_shipped": ["umap"]},
            )
        unknown = sorted(set(step) - set(_STEPS[method]) - {"method"})
        if unknown:
            raise BadRequestError(
                f"Parameter(s) {', '.join(unknown)} do not belong to preprocessing step '{method}'",
                {"step": position, "unknown": unknown},
            )
        filled = {"method": method, **_STEPS[method], **{k: v for k, v in step.items() if v is not None}}
        _check_values(position, filled)
        checked.append(filled)
    return checked


def _check_values(position: int, step: dict[str, Any]) -> None:
    def number(name: str, low: float, high: float | None = None) -> None:
        value = step[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (high and value > high):
            raise BadRequestError(
                f"{step['method']}.{name} must be a number in [{low}, {high if high else 'inf'}]",
                {"step": position, name: value},
            )

    if step["method"] == "whitening":
        number("regularization", 0.0)
    if step["method"] == "tsne":
        # Barnes-Hut t-SNE (the one that scales) embeds in at most 3 dimensions.
        number("n_components", 2, 3)
        number("perplexity", 1.0, 1000.0)
        number("learning_rate", 1.0)


def is_linear(steps: list[dict[str, Any]]) -> bool:
    return all(s["method"] in ("none", "whitening") for s in steps)


def check_size(steps: list[dict[str, Any]], points: int, streamed: bool) -> None:
    """At execute: t-SNE only in memory and up to its limit."""
    if not steps or is_linear(steps):
        return
    if streamed or points > TSNE_MAX_POINTS:
        raise BadRequestError(
            f"Preprocessing step 'tsne' runs on at most {TSNE_MAX_POINTS:,} points (this run would have "
            f"{points:,}); lower sample_size or use 'whitening'",
            {"points": points, "max_points": TSNE_MAX_POINTS},
        )
