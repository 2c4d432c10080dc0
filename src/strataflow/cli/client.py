"""A small HTTP client for the CLI: one server URL, one key, the contract's error envelope turned into ApiError."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

import httpx
import typer

from strataflow.config import Settings

TERMINAL = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED")

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Server base URL (env STRATAFLOW_URL; default http://127.0.0.1:8000).", show_default=False
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key (env STRATAFLOW_API_KEY; default: the contents of .strataflow/admin-key "
        "in the current directory, which `strataflow serve` writes on first start).",
        show_default=False,
    ),
]
NamespaceOption = Annotated[str, typer.Option("--namespace", "-n", help="Namespace name or id.")]


class ApiError(Exception):
    """The server refused a request, or could not be reached. `message` is what people see."""

    def __init__(self, message: str, status: int | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or {}


@dataclass
class Connection:
    url: str
    api_key: str | None


def resolve_connection(url: str | None, api_key: str | None) -> Connection:
    """Flags win over the environment; the environment wins over the local admin-key file."""
    settings = Settings()
    key = api_key or settings.api_key
    if key is None and settings.admin_key_path.is_file():
        key = settings.admin_key_path.read_text().strip() or None
    return Connection((url or settings.url).rstrip("/"), key)


class Client:
    """Thin wrapper over httpx: JSON in, JSON out, the server's own message on failure."""

    def __init__(self, connection: Connection, namespace: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {connection.api_key}"} if connection.api_key else {}
        if namespace:
            headers["X-Namespace"] = namespace
        self.url = connection.url
        self.http = httpx.Client(base_url=connection.url, headers=headers, timeout=timeout)
        # Presigned URLs are absolute and carry their own signature: no API key goes with them.
        self.blob_http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()
        self.blob_http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ApiError(
                f"cannot reach the server at {self.url} (is `strataflow serve` running? set --url or STRATAFLOW_URL)"
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(f"request to {self.url}{path} failed: {exc}") from None
        return self._answer(response)

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            raise ApiError(str(error["message"]), response.status_code, error.get("details") or {})
        raise ApiError(f"HTTP {response.status_code}: {response.text[:300]}", response.status_code)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=json if json is not None else {}, **kwargs)

    def put_blob(self, url: str, path: Path, content_type: str, on_bytes: Any = None) -> str:
        """PUT a file to a presigned URL, streaming it; returns the ETag."""
        size = path.stat().st_size

        def chunks() -> Any:
            with path.open("rb") as handle:
                while block := handle.read(1024 * 1024):
                    yield block
                    if on_bytes is not None:
                        on_bytes(len(block))

        try:
            # An explicit Content-Length keeps httpx from chunking the body: the blob store checks it up front.
            response = self.blob_http.put(
                url, content=chunks(), headers={"Content-Type": content_type, "Content-Length": str(size)}
            )
        except httpx.HTTPError as exc:
            raise ApiError(f"upload of {path.name} failed: {exc}") from None
        self._answer(response)
        return str(response.headers.get("etag", "")).strip('"')

    def wait_task(self, task_id: str, poll_s: float = 0.2, timeout_s: float = 3600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            task: dict[str, Any] = self.get(f"/v1/tasks/{task_id}")
            if task["status"] in TERMINAL:
                return task
            if time.monotonic() > deadline:
                raise ApiError(f"task {task_id} did not finish within {timeout_s:.0f} s")
            time.sleep(poll_s)
