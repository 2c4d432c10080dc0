"""Runners execute extractor work: locally in a process pool, or on a Ray cluster."""

from strataflow.engine.runners.base import ExtractionCall, Pipelines, Runner, RunNotes

__all__ = ["ExtractionCall", "Pipelines", "RunNotes", "Runner"]
