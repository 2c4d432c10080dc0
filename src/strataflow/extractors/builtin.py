"""The extractors that ship with Strataflow: the registration table the registry reads.

Add a new built-in to BUILTIN_EXTRACTORS. This module does not import the registry.
"""

from __future__ import annotations

from typing import Any

from strataflow.extractors.base import Extractor
from strataflow.extractors.image import IMAGE_EXTRACTOR
from strataflow.extractors.multimodal import MULTIMODAL_EXTRACTOR
from strataflow.extractors.passthrough import PassthroughExtractor
from strataflow.extractors.pdf import DOCUMENT_GRAPH_EXTRACTOR
from strataflow.extractors.text import TextExtractor

BUILTIN_EXTRACTORS: list[Extractor[Any]] = [
    TextExtractor(),
    PassthroughExtractor(),
    MULTIMODAL_EXTRACTOR,
    IMAGE_EXTRACTOR,
    DOCUMENT_GRAPH_EXTRACTOR,
]
