"""The outbound guard on its own: every spelling of an internal address is refused before any
byte leaves, redirects are checked hop by hop, and one deadline, a size cap and a concurrency
cap hold against real servers on loopback (allowed through the operator's allow list)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator

import pytest

from strataflow.config import Settings
from strataflow.outbound import AllowList, FetchFailed, OutboundClient, OutboundPolicy, is_public
from tests.security.outbound_servers import BODY, LoopbackServer, loopback_server


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with loopback_server() as live:
        yield live


def _client(server: LoopbackServer | None = None, **policy: float) -> OutboundClient:
    allow = AllowList.parse(f"127.0.0.1:{server.port}" if server else "")
    return OutboundClient(OutboundPolicy(allow=allow, **policy))  # type: ignore[arg-type]


# Each spelling names the live loopback server (or an internal range): without the guard the
# ones with a port would reach it. `server.requests` proves none did.
SPELLINGS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://LOCALHOST.:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0x7f.0.0.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://017700000001:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://0:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::1]:{port}/",
    "http://[0:0:0:0:0:0:0:1]:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[2002:7f00:1::]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/",
    "http://user:pw@127.0.0.1:{port}/",
    "http://example.com@127.0.0.1:{port}/",
    "https://127.0.0.1:{port}/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.0.1/",
    "http://198.18.0.1/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "file:///etc/passwd",
    "ftp://127.0.0.1:{port}/",
    "gopher://127.0.0.1:{port}/_",
    "http:///nohost",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_internal_addresses_are_refused_in_every_spelling(server: LoopbackServer, spelling: str) -> None:
    url = spelling.format(port=server.port)
    with pytest.raises(FetchFailed) as refused:
        _client().get(url)
    assert str(refused.value) == f"could not fetch {url}"
    assert server.requests == []


def test_the_same_server_answers_once_allowed(server: LoopbackServer) -> None:
    """The control for the table above: the server is really there and fetchable when allowed."""
    fetched = _client(server).get(f"{server.url}/file.txt")
    assert fetched.content == BODY and fetched.content_type == "text/plain" and fetched.filename == "file.txt"
    assert server.requests == ["/file.txt"]


def test_a_named_host_keeps_its_name_on_the_pinned_connection(server: LoopbackServer) -> None:
    """Allowed by name, `localhost` is resolved once and the connection goes to that address,
    while the request still names the host the URL gave."""
    client = OutboundClient(OutboundPolicy(allow=AllowList.parse("localhost")))
    assert client.get(f"http://localhost:{server.port}/named").content == BODY
    assert server.host_headers == [f"localhost:{server.port}"]


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_allow_list_entries() -> None:
    allow = AllowList.parse(" files.intranet , store.local:9000, 10.1.0.0/16, [::1]:8080, 127.0.0.1:7000,")
    loopback, v6 = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    inner = ipaddress.ip_address("10.1.2.3")
    assert allow.allows("files.intranet", 80, inner) and allow.allows("files.intranet", 8443, loopback)
    assert allow.allows("store.local", 9000, loopback) and not allow.allows("store.local", 9001, loopback)
    assert allow.allows("anything", 1234, inner) and not allow.allows(
        "anything", 1234, ipaddress.ip_address("10.2.0.1")
    )
    assert allow.allows("whatever", 8080, v6) and not allow.allows("whatever", 8081, v6)
    assert allow.allows("2130706433", 7000, loopback) and not allow.allows("2130706433", 7001, loopback)
    assert allow.allows("x", 7000, ipaddress.ip_address("::ffff:127.0.0.1"))  # the mapped form is the same host
    assert AllowList.parse("") == AllowList()
    for bad in ("http://files.intranet", "10.0.0.0/99", "a:b:c"):
        with pytest.raises(ValueError):
            AllowList.parse(bad)
    with pytest.raises(ValueError, match="cannot read entry"):  # raised when the runtime opens: the start fails
        OutboundPolicy.from_settings(Settings(outbound_allow="http://files.intranet"))


def test_each_redirect_hop_is_checked(server: LoopbackServer) -> None:
    with loopback_server() as internal:
        server.behaviour.redirects = {
            "/to-internal": f"{internal.url}/secret",
            "/to-mapped": f"http://[::ffff:127.0.0.1]:{internal.port}/secret",
            "/to-self": "/file.txt",
        }
        client = _client(server)
        for path in ("/to-internal", "/to-mapped"):
            with pytest.raises(FetchFailed):
                client.get(f"{server.url}{path}")
        assert internal.requests == []  # the allowed server's redirect did not reach the other one
        assert client.get(f"{server.url}/to-self").content == BODY  # a redirect within what is allowed works


def test_redirects_are_capped(server: LoopbackServer) -> None:
    server.behaviour.redirects = {f"/r{i}": f"/r{i + 1}" for i in range(10)}
    client = _client(server, max_redirects=3)
    with pytest.raises(FetchFailed):
        client.get(f"{server.url}/r0")  # r0 -> ... -> r10: ten hops
    assert server.requests == ["/r0", "/r1", "/r2", "/r3"]
    assert client.get(f"{server.url}/r7").content == BODY  # r7 -> r8 -> r9 -> r10: three hops


def test_one_deadline_for_the_whole_fetch_not_per_read(server: LoopbackServer) -> None:
    """A server sending a byte every 0.2 s never lets a per-read timeout fire; 300 bytes take a
    minute. The total deadline ends the fetch, and the server sees the client hang up."""
    server.behaviour.drip_bytes, server.behaviour.drip_pause_s = 300, 0.2
    with pytest.raises(FetchFailed):
        _client(server, deadline_s=1.0).get(f"{server.url}/drip")
    server.wait_for(lambda s: s.finished == 1)  # the server's answer ended (broken pipe), not by finishing


def test_size_cap_with_and_without_content_length(server: LoopbackServer) -> None:
    server.behaviour.sizes = {"/big": 5000, "/fits": 1000}
    client = _client(server, max_bytes=1000)
    assert len(client.get(f"{server.url}/fits").content) == 1000
    with pytest.raises(FetchFailed):
        client.get(f"{server.url}/big")  # refused on its Content-Length
    server.behaviour.chunked = True
    with pytest.raises(FetchFailed):
        client.get(f"{server.url}/big")  # no length given: stopped after the cap
    assert len(client.get(f"{server.url}/fits").content) == 1000
    with pytest.raises(FetchFailed):
        _client(server, max_bytes=10_000).get(f"{server.url}/big", max_bytes=100)  # a caller's smaller cap


def test_concurrent_fetches_are_capped(server: LoopbackServer) -> None:
    """Six fetches, cap two: the server never sees more than two at once, and all six finish."""
    gate = threading.Event()
    server.behaviour.gate = gate
    client = _client(server, max_concurrent=2, deadline_s=120)
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(client.get(f"{server.url}/f").content)) for _ in range(6)]
    for thread in threads:
        thread.start()
    server.wait_for(lambda s: s.active == 2)
    assert server.max_active == 2 and len(server.requests) == 2
    gate.set()
    for thread in threads:
        thread.join(60)
    assert results == [BODY] * 6 and server.max_active == 2 and len(server.requests) == 6


def test_waiting_for_a_slot_counts_against_the_deadline(server: LoopbackServer) -> None:
    gate = threading.Event()
    server.behaviour.gate = gate
    client = _client(server, max_concurrent=1, deadline_s=120)
    holder = threading.Thread(target=client.get, args=(f"{server.url}/slow",))
    holder.start()
    server.wait_for(lambda s: s.active == 1)
    with pytest.raises(FetchFailed):
        client.get(f"{server.url}/queued", deadline_s=1.0)  # never got a slot within its deadline
    gate.set()
    holder.join(60)
    assert "/queued" not in server.requests
