"""Scale-out fixtures: one real Ray started in the test process, for the whole session.

Ray starts in about 5 s and holds ~0.5 GB, so every Ray test shares it. It gets
2 CPUs; actors reserve 1 each, so a test's actor never waits on another's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from strataflow.config import Settings
from tests.s3_server import MotoServer, moto_server  # noqa: F401  (the session's S3 server)


@pytest.fixture(scope="session")
def ray_runner() -> Iterator[object]:
    from strataflow.engine.runners.ray import RayRunner

    runner = RayRunner.from_settings(Settings(engine="ray", ray_num_cpus=2, ray_object_store_mb=256,
                                              ray_actor_cpus=1.0))
    yield runner
    runner.close()  # kills its actors and shuts down the Ray it started


__all__ = ["MotoServer"]
