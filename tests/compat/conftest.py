"""SDK clients pointed at a real `strataflow serve` process."""

from __future__ import annotations

from collections.abc import Iterator

import mixpeek
import pytest

from tests.live import API_KEY, LiveServer, start_server


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("compat") / "data")
    yield server
    server.stop()


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[mixpeek.ApiClient]:
    """The SDK's generated client, configured as its README says (host without /v1)."""
    config = mixpeek.Configuration(host=live_server.url, access_token=API_KEY)
    with mixpeek.ApiClient(config) as client:
        yield client


def use_namespace(client: mixpeek.ApiClient, namespace: str) -> None:
    client.configuration.api_key["NamespaceHeader"] = namespace
