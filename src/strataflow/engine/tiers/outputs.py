"""Turn an extractor's output for one source row into stored documents.

Adds what the extractor does not know: the deterministic id, passthrough and
copied source fields, lineage, references to the source blobs, files the
extractor made (uploaded to blob storage), and the extractor's identity.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any

from strataflow.blobs import BlobStore
from strataflow.engine.tiers.records import SourceRecord, field_value
from strataflow.extractors.base import DocumentBlob, ErrorCategory, ExtractedDocument, ExtractionError
from strataflow.index.records import StoredDocument
from strataflow.services.collections.schema import SYSTEM_FIELDS, ResolvedPassthrough
from strataflow.services.documents.model import derived_document_id
from strataflow.store.tables import Collection


class DocumentBuilder:
    """Builds the documents of one collection; one instance per run."""

    def __init__(
        self,
        collection: Collection,
        extractor_id: str,
        params_hash: str,
        passthrough: list[ResolvedPassthrough],
        include_all: bool,
        produced: set[str],
        vector_map: dict[str, str],
        storage_names: set[str],
        blobs: BlobStore,
    ) -> None:
        self.collection = collection
        self.extractor_id = extractor_id
        self.params_hash = params_hash
        self.passthrough = passthrough
        self.include_all = include_all
        self.produced = produced
        self.vector_map = vector_map
        self.storage_names = storage_names
        self.blobs = blobs
        # Runs over each chunk of built documents before they are written (the collection's
        # taxonomy applications): documents are stored once, already enriched.
        self.enrich: Callable[[list[StoredDocument]], None] | None = None

    def build(self, record: SourceRecord, extracted: list[ExtractedDocument], now: str) -> list[StoredDocument]:
        carried = self._carried_fields(record)
        documents = []
        for ordinal, output in enumerate(extracted):
            # Position fields tell siblings apart; an extractor that gives several outputs without
            # them still gets stable ids from the output order.
            position = dict(output.position) or ({"ordinal": ordinal} if len(extracted) > 1 else {})
            document_id = derived_document_id(
                self.collection.collection_id, record.source_type, record.source_id, position
            )
            fields = {k: v for k, v in output.fields.items() if k not in SYSTEM_FIELDS}
            documents.append(
                StoredDocument(
                    document_id=document_id,
                    collection_id=self.collection.collection_id,
                    payload={**carried, **fields},
                    internal=self._internal(record, document_id, position, output.blobs, now),
                    vectors=self._vectors(output),
                    created_at=now,
                    updated_at=now,
                )
            )
        return documents

    def _carried_fields(self, record: SourceRecord) -> dict[str, Any]:
        """Source fields copied into every document of the row: all of them, then the passthrough list."""
        carried: dict[str, Any] = {}
        if self.include_all:
            carried = {
                k: v
                for k, v in record.fields.items()
                if k not in SYSTEM_FIELDS and k not in self.produced and k not in self.storage_names
            }
        for item in self.passthrough:
            value = field_value(record, item.source_path)
            if value is None:
                if item.default is not None:
                    value = item.default
                elif item.required:
                    raise ExtractionError(
                        ErrorCategory.VALIDATION, f"required passthrough field '{item.source_path}' is missing"
                    )
                else:
                    continue
            carried[item.target] = value
        return carried

    def _vectors(self, output: ExtractedDocument) -> dict[str, list[float] | None]:
        vectors: dict[str, list[float] | None] = {}
        for name, vector in output.vectors.items():
            storage = self.vector_map.get(name, name)
            if storage not in self.storage_names:
                raise ExtractionError(ErrorCategory.RUNTIME, f"extractor returned undeclared vector '{name}'")
            vectors[storage] = [float(x) for x in vector]
        return vectors

    def _lineage(self, record: SourceRecord, document_id: str, now: str) -> dict[str, Any]:
        step = {
            "collection_id": self.collection.collection_id,
            "feature_extractor_id": self.extractor_id,
            "document_id": document_id,
            "timestamp": now,
        }
        if record.source_type == "bucket":
            return {
                "root_object_id": record.source_id,
                "root_bucket_id": record.container_id,
                "source_type": "bucket",
                "source_object_id": record.source_id,
                "path": f"{record.container_id}/{self.collection.collection_id}",
                "chain": [step],
            }
        upstream = record.lineage
        return {
            "root_object_id": upstream.get("root_object_id"),
            "root_bucket_id": upstream.get("root_bucket_id"),
            # A taxonomy source's documents are its upstream's, enriched: the lineage says so.
            "source_type": "taxonomy" if (self.collection.source or {}).get("type") == "taxonomy" else "collection",
            "source_document_id": record.source_id,
            "source_collection_id": record.container_id,
            "path": f"{upstream.get('path') or record.container_id}/{self.collection.collection_id}",
            "chain": [*(upstream.get("chain") or []), step],
        }

    def _internal(
        self, record: SourceRecord, document_id: str, position: dict[str, Any], made: list[DocumentBlob], now: str
    ) -> dict[str, Any]:
        return {
            "namespace_id": self.collection.namespace_id,
            "lineage": self._lineage(record, document_id, now),
            "source_blobs": record.source_blobs,
            "document_blobs": [self._store_blob(document_id, blob, record, now) for blob in made],
            "metadata": {
                "ingestion_status": "COMPLETED",
                "feature_extractor_id": self.extractor_id,
                "feature_extractor_version": self.collection.feature_extractor.get("version"),
                "feature_extractor_config_hash": self.params_hash,
                "position": position,
            },
        }

    def _store_blob(self, document_id: str, blob: DocumentBlob, record: SourceRecord, now: str) -> dict[str, Any]:
        content_type = blob.content_type or mimetypes.guess_type(blob.path.name)[0] or "application/octet-stream"
        key = (
            f"{self.collection.namespace_id}/collections/{self.collection.collection_id}/{document_id}/"
            f"{blob.field}{blob.path.suffix}"
        )
        with blob.path.open("rb") as stream:
            written = self.blobs.put_stream(key, stream, content_type)
        source_blob = record.source_blobs[0]["blob_id"] if record.source_blobs else None
        return {
            "field": blob.field,
            "key": key,
            "url": self.blobs.uri(key),
            "role": blob.role,
            "type": blob.type,
            "filename": blob.path.name,
            "size_bytes": written.size,
            "content_type": content_type,
            "checksum": f"sha256:{written.sha256}",
            "created_at": now,
            "source_blob_id": source_blob,
        }
