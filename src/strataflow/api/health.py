"""Health and liveness. Public: no key needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from strataflow.api.deps import RuntimeDep
from strataflow.schemas.common import ErrorResponse

# Public, but not exempt from the edge checks: a URL with %00 gets its 400 here too (api/text_guard.py).
router = APIRouter(prefix="/v1/health", tags=["Health"], responses={400: {"model": ErrorResponse}})


@router.get("/liveness")
def liveness() -> dict[str, str]:
    return {"status": "alive"}


@router.get("")
def health(runtime: RuntimeDep, deep: bool = False, metrics: bool = False) -> dict[str, Any]:
    try:
        with runtime.db.read_session() as session:
            session.execute(text("SELECT 1"))
        metadata_ok = True
    except Exception:  # noqa: BLE001  whatever the cause, the database is not usable
        metadata_ok = False
    storage_ok = runtime.blobs.check()
    data = {
        "cache": True,
        "metadata": metadata_ok,
        "vector_store": True,
        "object_storage": storage_ok,
        "task_queue": metadata_ok,  # the queue is the tasks table
        "inference": True,
        "analytics": None,
    }
    status = "OK" if metadata_ok and storage_ok else "DEGRADED"
    return {"status": status, "data": data, "errors": None, "meta": None}
