"""Strataflow: a self-hosted multimodal data engine speaking the Mixpeek v1 API."""

__version__ = "0.1.0"
