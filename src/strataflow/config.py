"""All settings, in one place. Nothing else in the package reads os.environ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Default caps on one input row (extractors/limits.py reads them too, so the two never drift apart).
PDF_PAGE_MAX_PIXELS = 40_000_000  # a US letter page OCRed at 600 dpi is 33.7 million
VIDEO_MAX_SEGMENTS = 10_000  # a 2.8-hour file cut every second
IMAGE_MAX_PIXELS = 90_000_000  # about Pillow's own bomb warning (89.5 million)
IMAGE_MAX_FRAMES = 1_000
TEXT_MAX_BYTES = 16 * 1024 * 1024


class Settings(BaseSettings):
    """Runtime configuration, read from `STRATAFLOW_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="STRATAFLOW_", extra="ignore")

    data_dir: Path = Field(default=Path(".strataflow"), description="Embedded data lives here.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means SQLite in the data dir.",
    )
    blob_url: str | None = Field(
        default=None,
        description="Where blob bytes live: empty for the data dir, or s3://bucket/prefix.",
    )
    index_uri: str | None = Field(default=None, description="LanceDB URI; empty for the data dir.")
    vector_index_min_rows: int = Field(
        default=50_000,
        ge=1,
        description="A collection's table gets a vector index (IVF_HNSW_SQ) at this many rows; exact search below.",
    )
    api_key: str | None = Field(
        default=None,
        description="Admin key adopted on first start with an empty data dir.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL clients reach the API on; used in presigned URLs.",
    )
    url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where the command-line client finds the server (ingest, watch, search).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    max_json_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_inline_blob_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # Requests the server makes itself (object blobs given as URLs): see strataflow.outbound.
    outbound_allow: str = Field(
        default="",
        description="Internal sources URLs may reach anyway: comma-separated hosts, host:port pairs or CIDRs.",
    )
    outbound_deadline_s: float = Field(
        default=30.0, gt=0, description="Wall-clock limit of one fetch, redirects and every read included."
    )
    outbound_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1, description="Largest body one fetch may read.")
    outbound_max_redirects: int = Field(default=5, ge=0, description="Redirects one fetch follows.")
    outbound_max_concurrent: int = Field(
        default=8, ge=1, description="Fetches a process runs at once; more wait for a slot within their deadline."
    )
    # Events (docs/events.md): webhook deliveries from the outbox, made by a dispatcher off the request path.
    events_dispatcher: bool = Field(
        default=True, description="Run the webhook dispatcher in this process (API server and `strataflow worker`)."
    )
    events_dispatch_workers: int = Field(default=2, ge=1, le=32, description="Deliveries this process makes at once.")
    events_poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the dispatcher looks for due deliveries made by other processes."
    )
    events_max_attempts: int = Field(
        default=8, ge=1, le=100, description="Attempts of one delivery before it is given up (recorded FAILED)."
    )
    events_retry_base_s: float = Field(
        default=2.0, gt=0, description="Wait before the first retry; doubles with each failed attempt (with jitter)."
    )
    events_retry_max_s: float = Field(default=3600.0, gt=0, description="Longest wait between two attempts.")
    events_pause_after_failures: int = Field(
        default=20,
        ge=0,
        description="Consecutive failed attempts after which a webhook is paused (is_active false); 0 never.",
    )
    events_max_timeout_s: float = Field(
        default=30.0, gt=0, description="Largest `timeout` a webhook channel may ask for, in seconds."
    )
    events_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Delivered, given-up and canceled deliveries (and events no delivery still waits for) older "
        "than this are deleted by the trigger loop; 0 keeps them forever.",
    )
    events_claim_batch: int = Field(
        default=16,
        ge=1,
        le=500,
        description="Deliveries one dispatcher thread claims in one transaction (their outcomes are written together).",
    )
    secrets_key: str | None = Field(
        default=None,
        description="Fernet key that encrypts webhook signing secrets at rest; empty: a key file in the data dir "
        "(set it when several servers share one database).",
    )
    task_workers: int = Field(default=2, ge=1, description="Threads running API background tasks.")
    task_poll_interval_s: float = Field(default=1.0, gt=0)
    api_only: bool = Field(
        default=False,
        description="`serve` runs the API alone: `strataflow worker` processes run batches and background jobs.",
    )
    engine: str = Field(default="local", pattern="^(local|ray)$", description="Where extraction runs.")
    engine_processes: int = Field(default=1, ge=1, description="Worker processes of the local runner.")
    engine_threads: int = Field(default=0, ge=0, description="Torch threads per worker; 0 = all cores / processes.")
    cluster_threads: int = Field(
        default=0,
        ge=0,
        description="BLAS/OpenMP threads of a cluster run's numeric work (scikit-learn, NumPy); 0 = the "
        "libraries' default (every core). On a machine shared by busy processes, 1 avoids oversubscription.",
    )
    # The Ray runner (STRATAFLOW_ENGINE=ray). Extraction runs in Ray actors that keep their
    # models loaded; documents are still written by the scheduler process.
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster to join: 'auto' or 'host:6379'; empty starts Ray in-process.",
    )
    ray_num_cpus: int = Field(default=0, ge=0, description="CPUs of an in-process Ray; 0 = all of the machine.")
    ray_object_store_mb: int = Field(default=0, ge=0, description="Object store of an in-process Ray; 0 = Ray's.")
    ray_actors: int = Field(default=1, ge=1, description="Actors per extractor (each holds its models).")
    ray_actor_cpus: float = Field(
        default=0.0, ge=0, description="CPUs an actor reserves; 0 = the extractor's declared num_cpus."
    )
    ray_max_restarts: int = Field(
        default=3,
        ge=0,
        description="Restarts of a dead actor; the chunk it was running is narrowed down to its poison row in a "
        "quarantine actor, not retried whole.",
    )
    ray_namespace: str = Field(default="strataflow", description="Ray namespace of the runner's actors.")
    ray_data: bool = Field(
        default=True,
        description="Run a tier's collections as Ray Data pipelines over its Parquet manifest; "
        "false: send manifest chunks to a pool of actors one call at a time.",
    )
    ray_read_cpus: float = Field(
        default=0.25,
        gt=0,
        description="CPUs a Ray Data read task reserves: a fraction, so reads never wait on the extraction actors.",
    )
    ray_actor_idle_s: float = Field(
        default=60.0,
        ge=0,
        description="Ray Data path: stage actors (and their models) kept for later tiers this long after their last "
        "tier; 0 = stop them when each tier ends. A Ray cluster started by Strataflow keeps idle worker "
        "processes as long (at least 1 s).",
    )
    tier_stall_s: float = Field(
        default=300.0,
        gt=0,
        description="A Ray tier whose extraction returns nothing for this long is reported as stalled (with Ray's "
        "reason) and its remaining rows fail as retryable resource errors.",
    )
    retriever_execution_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="Retriever executions (inputs, stage statistics, result ids) are kept this many days, then "
        "pruned; 0 keeps none (executions are still answered, never stored).",
    )
    retriever_execution_max_results: int = Field(
        default=1000, ge=0, description="Ranked result ids (and scores) one stored execution keeps."
    )
    device: str = Field(default="cpu", description="Device extractors use: cpu, or cuda when a GPU is there.")
    # Vision-language models (CLIP/SigLIP) the operator provides: see docs/vision-models.md.
    models_dir_path: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("STRATAFLOW_MODELS_DIR", "models_dir_path"),
        description="Model checkpoints (vision models, Whisper's assembled weights); empty: <data dir>/models.",
    )
    vision_model: str | None = Field(
        default=None,
        description="Installed vision model a new image or video collection uses when its request names none; "
        "empty: a collection gets a visual embedding only when it asks for a model.",
    )
    vision_batch_size: int = Field(default=32, ge=1, le=1024, description="Images per vision-model forward pass.")
    models_pull: bool = Field(
        default=False,
        description="Allow `strataflow models pull` to download checkpoints from a model hub (off: the server "
        "never downloads a model; extraction never does, whatever this says).",
    )
    models_hub_url: str = Field(
        default="https://huggingface.co", description="Model hub `strataflow models pull` downloads from."
    )
    scheduler_workers: int = Field(default=2, ge=1, description="Tiers this process runs at the same time.")
    tier_lease_s: float = Field(
        default=30.0, gt=0, description="A tier's lease; a dead worker's tier resumes after it."
    )
    manifest_chunk_rows: int = Field(default=1000, ge=1, description="Manifest rows read and processed at a time.")
    extract_batch_size: int = Field(default=256, ge=1, description="Rows handed to an extractor per call.")
    # Caps on one input row (extractors/limits.py): a row over one fails with a permanent
    # `validation` error that names the cap, before its memory is spent.
    pdf_max_page_pixels: int = Field(
        default=PDF_PAGE_MAX_PIXELS,
        ge=1,
        description="Pixels one PDF page may render to (page area x dpi^2); render_dpi and ocr_dpi both count.",
    )
    video_max_segments: int = Field(
        default=VIDEO_MAX_SEGMENTS, ge=1, description="Segments one audio/video file may be cut into."
    )
    image_max_pixels: int = Field(
        default=IMAGE_MAX_PIXELS, ge=1, description="Pixels (width x height) one image may declare."
    )
    image_max_frames: int = Field(
        default=IMAGE_MAX_FRAMES, ge=1, description="Frames one animated image (GIF, APNG, WebP) may hold."
    )
    text_max_bytes: int = Field(
        default=TEXT_MAX_BYTES, ge=1, description="Bytes of one text input (a text blob or field)."
    )
    worker_memory_mb: int | None = Field(
        default=None,
        ge=64,
        description="Memory ceiling (RLIMIT_DATA) of each extraction worker process; a row that needs more "
        "fails instead of drawing the kernel's OOM killer. Empty: no ceiling.",
    )
    # Presigned uploads: per-file cap, optional per-namespace quota, and the size above
    # which a confirm runs as a background task (the contract says 100 MB).
    max_upload_bytes: int = Field(default=5 * 1024**3, ge=1, description="Largest file one upload may carry.")
    upload_quota_bytes: int | None = Field(
        default=None, ge=1, description="Bytes of live uploads a namespace may hold; empty means no quota."
    )
    upload_async_confirm_bytes: int = Field(default=100 * 1024**2, ge=1)
    multipart_part_size_bytes: int = Field(default=64 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    # S3 back end (STRATAFLOW_BLOB_URL=s3://bucket/prefix). Empty credentials fall back
    # to boto3's own chain (environment, config files, instance roles).
    s3_endpoint_url: str | None = Field(default=None, description="S3 API endpoint, e.g. http://127.0.0.1:9000.")
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_path_style: bool = Field(default=False, description="Address buckets as endpoint/bucket (MinIO, moto).")
    log_level: str = "INFO"
    log_json: bool = False

    @field_validator(
        "database_url",
        "blob_url",
        "index_uri",
        "api_key",
        "public_url",
        "ray_address",
        "worker_memory_mb",
        "models_dir_path",
        "vision_model",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """`STRATAFLOW_API_KEY=` in a shell or compose file means 'not set', not an empty key."""
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'strataflow.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def resolved_index_uri(self) -> str:
        return self.index_uri or str((self.data_dir / "index").resolve())

    @property
    def work_dir(self) -> Path:
        """Scratch space for extraction jobs (inputs fetched from blob storage)."""
        return self.data_dir / "work"

    @property
    def models_dir(self) -> Path:
        """Model checkpoints the operator installs (vision) and models assembled on disk at first use (Whisper)."""
        return (self.models_dir_path or self.data_dir / "models").resolve()

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "admin-key"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
