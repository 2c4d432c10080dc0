"""Scale-out fixtures: one real Ray started in the test process, for the whole session.

Ray starts in about 5 s and holds ~0.5 GB, so every Ray test shares it. It gets
2 CPUs. `ray_runner` runs tiers as Ray Data pipelines (the default): a stage
actor reserves 1 CPU and the manifest read a fraction; stage actors stay warm for
`ray_actor_idle_s` after their tier (or until a pool of this process needs the room).
`ray_chunk_runner` sends chunks to its own actor pool (`ray_data=False`); its
actor holds 1 CPU until the test ends, so it is closed after each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from strataflow.config import Settings
from tests.s3_server import MotoServer, moto_server  # noqa: F401  (the session's S3 server)


@pytest.fixture(scope="session")
def ray_runner() -> Iterator[object]:
    from strataflow.engine.runners.ray import RayRunner

    runner = RayRunner.from_settings(
        Settings(engine="ray", ray_num_cpus=2, ray_object_store_mb=256, ray_actor_cpus=1.0)
    )
    yield runner
    runner.close()  # kills its actors and shuts down the Ray it started


@pytest.fixture
def ray_chunk_runner(ray_runner: object) -> Iterator[object]:
    """The per-chunk Ray runner on the session's Ray (which `ray_runner` starts, with its CPU limit)."""
    from strataflow.engine.runners.ray import RayRunner

    runner = RayRunner.from_settings(Settings(engine="ray", ray_data=False, ray_actor_cpus=1.0))
    yield runner
    runner.close()  # kills its actors; the session's Ray stays


__all__ = ["MotoServer"]
