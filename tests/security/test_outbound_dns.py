"""A name server that never answers cannot hold a fetch past its deadline.

`getaddrinfo` has no timeout of its own: the resolver's (here 60 s, one attempt) would hold a worker
that long. The test runs the fetch in a network namespace of its own whose resolv.conf points at a
UDP socket on its loopback that reads queries and never replies (`ip netns exec` mounts
/etc/netns/NAME/resolv.conf over /etc/resolv.conf), so the real resolver really waits.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_FETCH = """
import socket, threading
from strataflow.outbound import FetchFailed, OutboundClient, OutboundPolicy

silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
silent.bind(("127.0.0.1", 53))
threading.Thread(target=lambda: [silent.recvfrom(4096) for _ in iter(int, 1)], daemon=True).start()

client = OutboundClient(OutboundPolicy(deadline_s=2.0))
for attempt in range(2):  # the second finds the first lookup's thread still stuck, and still ends
    try:
        client.get(f"http://files-{attempt}.example.test/a.txt")
    except FetchFailed as exc:
        print("refused:", exc.reason, flush=True)
"""


@pytest.fixture
def silent_dns_netns() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (`ip netns add`)")
    name = f"sfdns-{secrets.token_hex(3)}"
    etc = Path("/etc/netns") / name
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=30)
    try:
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:60 attempts:1\n")
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True, timeout=30)
        yield name
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True, timeout=30)


def test_a_silent_name_server_ends_at_the_fetch_deadline(silent_dns_netns: str) -> None:
    source = str(Path(__file__).resolve().parents[2] / "src")
    # Without the deadline on the lookup, each fetch would wait out the resolver's 60 s and the
    # subprocess would be killed here at 50 s: the test fails rather than hangs.
    result = subprocess.run(
        ["ip", "netns", "exec", silent_dns_netns, sys.executable, "-c", _FETCH],
        env={**os.environ, "PYTHONPATH": source},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "refused: cannot resolve files-0.example.test before the deadline",
        "refused: cannot resolve files-1.example.test before the deadline",
    ], result.stderr
