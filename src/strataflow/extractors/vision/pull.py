"""`strataflow models pull`: download a checkpoint from a Hugging Face–style hub, then install it like an import.

Off unless the operator sets STRATAFLOW_MODELS_PULL=true: most machines running Strataflow
cannot reach a hub, and the server itself never downloads a model (extraction reads the
models directory only). Requests go through the outbound guard with the operator's allow list,
streamed to disk; only the files a CLIP/SigLIP checkpoint needs are fetched (safetensors
weights, never pickles), and the download is verified and published as `import` does.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from strataflow.config import Settings
from strataflow.extractors.vision.catalog import ModelFormatError, VisionModelInfo, check_name
from strataflow.extractors.vision.importing import ImportFailed, publish, staging_dir
from strataflow.outbound import AllowList, FetchFailed, OutboundClient, OutboundPolicy

REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$")
WANTED = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "spiece.model",
)
PULL_DEADLINE_S = 6 * 3600.0  # a whole checkpoint file over a slow link
PULL_MAX_BYTES = 64 * 1024**3


class PullFailed(Exception):
    """Nothing was installed; the message says why."""


def pulls_off_message() -> str:
    return (
        "model pulls are off on this machine (the default). Set STRATAFLOW_MODELS_PULL=true on a machine that "
        "can reach the model hub, or download the checkpoint folder elsewhere and install it with "
        "`strataflow models import PATH --name NAME`"
    )


def _client(settings: Settings) -> OutboundClient:
    """The outbound guard with the operator's allow list, and limits sized for checkpoints, not blobs."""
    return OutboundClient(
        OutboundPolicy(
            allow=AllowList.parse(settings.outbound_allow),
            deadline_s=PULL_DEADLINE_S,
            max_bytes=PULL_MAX_BYTES,
            max_redirects=max(settings.outbound_max_redirects, 5),
            max_concurrent=1,
        )
    )


def _files_to_fetch(siblings: list[str]) -> list[str]:
    present = set(siblings)
    files = [f for f in WANTED if f in present]
    if "model.safetensors" in files:
        files = [f for f in files if f != "model.safetensors.index.json"]
    if "config.json" not in files or not ({"model.safetensors", "model.safetensors.index.json"} & set(files)):
        raise PullFailed("the repository has no config.json with safetensors weights at its top level")
    return files


def pull_model(
    settings: Settings,
    repository: str,
    name: str | None = None,
    revision: str = "main",
    progress: Callable[[str], None] = lambda _line: None,
) -> VisionModelInfo:
    if not settings.models_pull:
        raise PullFailed(pulls_off_message())
    if not REPOSITORY.match(repository) or ".." in repository:
        raise PullFailed(f"'{repository}' is not a repository name like owner/model")
    if not REVISION.match(revision) or ".." in revision:
        raise PullFailed(f"'{revision}' is not a branch, tag or commit")
    try:
        name = check_name(name or repository.split("/", 1)[1])
    except ModelFormatError as exc:
        raise PullFailed(str(exc)) from None
    models_dir = settings.models_dir
    if (models_dir / name).exists():
        raise PullFailed(f"a model named '{name}' is already installed; choose another --name")
    hub = settings.models_hub_url.rstrip("/")
    client = _client(settings)
    rev = quote(revision, safe="")
    try:
        listing = json.loads(client.get(f"{hub}/api/models/{repository}/revision/{rev}", max_bytes=16 << 20).content)
    except FetchFailed as exc:
        raise PullFailed(f"{exc} (is the hub reachable, and named in STRATAFLOW_OUTBOUND_ALLOW if internal?)") from None
    except ValueError:
        raise PullFailed("the hub's answer about the repository is not JSON") from None
    siblings = [str(s.get("rfilename")) for s in listing.get("siblings") or [] if isinstance(s, dict)]
    files = _files_to_fetch(siblings)
    staging = staging_dir(models_dir, name)
    try:
        for file in files:
            _download(client, f"{hub}/{repository}/resolve/{rev}/{file}", staging / file, progress)
        index = staging / "model.safetensors.index.json"
        if index.exists():
            shards = sorted(set((json.loads(index.read_text()).get("weight_map") or {}).values()))
            for shard in shards:
                if "/" in shard or shard.startswith(".") or not shard.endswith(".safetensors"):
                    raise PullFailed(f"the weights index names an unexpected file: {shard!r}")
                _download(client, f"{hub}/{repository}/resolve/{rev}/{quote(shard)}", staging / shard, progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        return publish(staging, models_dir, name)
    except ImportFailed as exc:
        raise PullFailed(str(exc)) from None


def _download(client: OutboundClient, url: str, target: Path, progress: Callable[[str], None]) -> None:
    try:
        with target.open("wb") as sink:
            written = client.download(url, sink)
    except FetchFailed as exc:
        raise PullFailed(str(exc)) from None
    progress(f"{target.name}: {written:,} bytes")
