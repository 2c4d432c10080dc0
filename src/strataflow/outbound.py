"""The one place the server makes HTTP requests of its own (URL blobs, webhook deliveries; later model pulls).

A URL a tenant gives us must not turn the server against its own network. So
every fetch here:

- accepts `http` and `https` only;
- resolves the host once, refuses it when any of its addresses is loopback,
  private, link-local, shared (100.64/10), multicast, unspecified or reserved
  (IPv4 written any way the resolver accepts: `2130706433`, `0x7f000001`,
  `0177.1`, `127.1`; IPv6 mapped, compatible, 6to4, Teredo and NAT64 forms are
  judged by the IPv4 address inside), and then connects to that very address
  (the Host header and TLS name stay the URL's, so certificates still verify):
  a DNS answer that changes between check and connect changes nothing;
- checks every redirect hop the same way, and follows at most a few;
- has one wall-clock deadline for everything (queueing, the DNS lookup, connect,
  every read): a server dripping a byte a second, or a name server that never
  answers, cannot hold a request past it;
- stops at a size limit, and runs at most a few fetches at once.

The operator's allow list (`STRATAFLOW_OUTBOUND_ALLOW`) names internal sources
that may be reached anyway. Every refusal and failure raises `FetchFailed` with
one message, whatever the cause, so answers never tell a closed port from an
open one; the precise reason goes to the server log only.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urljoin, urlsplit

import httpcore

if TYPE_CHECKING:
    from strataflow.config import Settings

log = logging.getLogger("strataflow.outbound")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = {"http": 80, "https": 443}
KEEPALIVE_S = 30.0  # an idle kept-alive POST connection is closed after this long
KEPT_TARGETS = 64  # targets with kept-alive connections; the least recently used beyond are closed
DRAIN_BYTES = 64 * 1024  # a POST answer up to this size is read to its end, so its connection can be reused
REDIRECTS = {301, 302, 303, 307, 308}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT


class FetchFailed(Exception):
    """A URL was refused or could not be fetched. `reason` is for the server log, never for the caller."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"could not fetch {url}")
        self.url = url
        self.reason = reason


# -- addresses ---------------------------------------------------------------------------


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, Teredo client, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public internet; False for every internal or special range."""
    # is_global alone lets multicast through, and says nothing of an IPv4 address inside an IPv6 one.
    if (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip in _SHARED
    ):
        return False
    inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    return inner is None or is_public(inner)


# -- the operator's allow list -----------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    """Internal sources the operator allows: host names, `host:port` pairs and networks."""

    hosts: frozenset[str] = frozenset()
    host_ports: frozenset[tuple[str, int]] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | Iterable[str] | None) -> AllowList:
        """`intranet.example, files.local:8080, 10.1.0.0/16, 127.0.0.1:9000, [::1]:9000`."""
        entries = text.split(",") if isinstance(text, str) else list(text or [])
        hosts: set[str] = set()
        host_ports: set[tuple[str, int]] = set()
        networks: list[IPNetwork] = []
        for raw in (e.strip() for e in entries):
            if not raw:
                continue
            try:
                networks.append(ipaddress.ip_network(raw.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host, sep, port = raw.rpartition(":")
            if sep and port.isdigit() and host and (host.startswith("[") or ":" not in host):
                host_ports.add((_normal_host(host), int(port)))
            elif ":" in raw or "/" in raw or not raw.strip("."):
                raise ValueError(f"cannot read entry {raw!r}: use a host, host:port or a network (CIDR)")
            else:
                hosts.add(_normal_host(raw))
        return cls(frozenset(hosts), frozenset(host_ports), tuple(networks))

    def allows(self, host: str, port: int, ip: IPAddress) -> bool:
        candidates = {ip} | (
            {inner} if isinstance(ip, ipaddress.IPv6Address) and (inner := embedded_ipv4(ip)) else set()
        )
        if host in self.hosts or (host, port) in self.host_ports:
            return True
        for address in candidates:
            if (str(address), port) in self.host_ports:
                return True
            if any(address.version == net.version and address in net for net in self.networks):
                return True
        return False


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


# -- policy and deadline -----------------------------------------------------------------


@dataclass(frozen=True)
class OutboundPolicy:
    allow: AllowList = field(default_factory=AllowList)
    deadline_s: float = 30.0
    max_bytes: int = 64 * 1024 * 1024
    max_redirects: int = 5
    max_concurrent: int = 8
    user_agent: str = "strataflow"

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(
            allow=AllowList.parse(settings.outbound_allow),
            deadline_s=settings.outbound_deadline_s,
            max_bytes=settings.outbound_max_bytes,
            max_redirects=settings.outbound_max_redirects,
            max_concurrent=settings.outbound_max_concurrent,
        )


class Deadline:
    """One wall-clock limit for a whole fetch; every wait inside it is clamped to what is left."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def clamp(self, timeout: float | None) -> float:
        left = self.remaining()
        if left <= 0:
            raise httpcore.TimeoutException("deadline passed")
        return left if timeout is None else min(timeout, left)


# -- the pinned connection ---------------------------------------------------------------


DeadlineOf = Callable[[], Deadline]


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the deadline of the request using it
    (a kept-alive connection serves several requests, one at a time, each with its own)."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: DeadlineOf) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline().clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline().clamp(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, self._deadline().clamp(timeout))
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the address that was checked, whatever host name the request carries."""

    def __init__(self, address: IPAddress, deadline: DeadlineOf) -> None:
        self._address, self._deadline = address, deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            str(self._address), port, self._deadline().clamp(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never reached from outside")

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(0.0, self._deadline().remaining())))


# -- fetching ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str | None
    final_url: str

    @property
    def filename(self) -> str | None:
        return unquote(urlsplit(self.final_url).path.rsplit("/", 1)[-1]) or None


@dataclass(frozen=True)
class _Target:
    url: str
    host: str
    port: int
    address: IPAddress


class TooLarge(Exception):
    pass


class _CountingSink:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.written = 0

    def write(self, chunk: bytes) -> None:
        self.stream.write(chunk)
        self.written += len(chunk)


@dataclass(frozen=True)
class Posted:
    """The answer to a POST: its status and the first bytes of its body (for a delivery log)."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class OutboundClient:
    """Fetches URLs under one policy. Thread-safe; one per process (it owns the concurrency cap)."""

    def __init__(self, policy: OutboundPolicy, ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self._slots = threading.BoundedSemaphore(policy.max_concurrent)
        self._ssl = ssl_context or ssl.create_default_context()
        # `getaddrinfo` takes no timeout, so lookups run on threads of their own and the fetch waits
        # only until its deadline. A lookup that never returns keeps its thread, but there are at most
        # as many as fetch slots: a silent name server cannot make the server grow threads.
        self._resolver = ThreadPoolExecutor(max_workers=policy.max_concurrent, thread_name_prefix="outbound-dns")
        # Kept-alive connections for POSTs (webhook deliveries), one pool per checked target: the
        # key holds the address the guard accepted, so a reused connection goes nowhere else.
        self._kept: OrderedDict[tuple[str, str, int, str], httpcore.ConnectionPool] = OrderedDict()
        self._kept_lock = threading.Lock()
        self._request = threading.local()  # the deadline of the request this thread is making

    def close(self) -> None:
        """Close the kept-alive connections (they are opened again when needed)."""
        with self._kept_lock:
            pools = list(self._kept.values())
            self._kept.clear()
        for pool in pools:
            pool.close()

    def get(self, url: str, max_bytes: int | None = None, deadline_s: float | None = None) -> Fetched:
        """GET `url` and return its body. Raises `FetchFailed` (one message for every cause).
        A caller may ask for a smaller size or a shorter deadline than the policy's, never more."""
        return self._fetch(url, max_bytes, deadline_s, None)

    def download(self, url: str, sink: BinaryIO, max_bytes: int | None = None, deadline_s: float | None = None) -> int:
        """GET `url` into `sink` as it arrives (files too big to hold in memory: model pulls); returns the
        bytes written. The same guard, limits and single failure as `get`; a failure may leave `sink` part-written."""
        counter = _CountingSink(sink)
        self._fetch(url, max_bytes, deadline_s, counter)
        return counter.written

    def _fetch(self, url: str, max_bytes: int | None, deadline_s: float | None, sink: _CountingSink | None) -> Fetched:
        """The one path of every GET: limits, a slot, the hops."""
        limit = min(max_bytes or self.policy.max_bytes, self.policy.max_bytes)
        deadline = Deadline(min(deadline_s or self.policy.deadline_s, self.policy.deadline_s))
        with self._guarded(url, deadline, limit):
            return self._follow(url, limit, deadline, sink)

    @contextmanager
    def _guarded(self, url: str, deadline: Deadline, limit: int | None = None) -> Iterator[None]:
        """A fetch slot for the request's length, and every way it can fail as one `FetchFailed`."""
        if not self._slots.acquire(timeout=max(0.0, deadline.remaining())):
            raise self._failed(url, "no fetch slot freed before the deadline")
        try:
            yield
        except FetchFailed:
            raise
        except TooLarge:
            raise self._failed(url, f"larger than {limit} bytes") from None
        except (httpcore.TimeoutException, TimeoutError):
            raise self._failed(url, "deadline passed") from None
        except (
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.UnsupportedProtocol,
            OSError,
            ValueError,
            UnicodeError,
        ) as exc:
            raise self._failed(url, f"{type(exc).__name__}: {exc}") from None
        finally:
            self._slots.release()

    def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        deadline_s: float | None = None,
        keep_bytes: int = 2048,
        keep_alive: bool = False,
    ) -> Posted:
        """POST `body` to `url` (a webhook delivery) and return the answer, whatever its status.

        Redirects are not followed (an answer of 3xx is returned as is: the body is not sent twice),
        and at most `keep_bytes` of the answer are kept. Raises `FetchFailed` when the URL is refused
        or no answer came before the deadline.

        `keep_alive`: reuse a connection to the same checked address (the URL is still resolved and
        judged on every call: an answer that changed gets a connection of its own, or a refusal)."""
        deadline = Deadline(min(deadline_s or self.policy.deadline_s, self.policy.deadline_s))
        with self._guarded(url, deadline):
            target = self._target(url, deadline)
            sent = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            sent += [(b"User-Agent", self.policy.user_agent.encode()), (b"Content-Length", str(len(body)).encode())]
            if not keep_alive:
                with self._pinned_pool(target.address, lambda: deadline) as pool:
                    status, answer = self._send(pool, target, sent, body, keep_bytes, deadline)
                return Posted(status, answer)
            self._request.deadline = deadline
            try:
                status, answer = self._send(self._kept_pool(target), target, sent, body, keep_bytes, deadline)
            finally:
                self._request.deadline = None
            return Posted(status, answer)

    def _pinned_pool(self, address: IPAddress, deadline: DeadlineOf, connections: int = 1) -> httpcore.ConnectionPool:
        """A connection pool that connects to `address` only, every wait bounded by `deadline()`."""
        return httpcore.ConnectionPool(
            ssl_context=self._ssl,
            network_backend=_PinnedBackend(address, deadline),
            max_connections=connections,
            keepalive_expiry=KEEPALIVE_S,
            retries=0,
        )

    def _current_deadline(self) -> Deadline:
        deadline = getattr(self._request, "deadline", None)
        if deadline is None:  # a kept connection touched outside a request (closing it): no wait is allowed
            return Deadline(0.0)
        return deadline  # type: ignore[no-any-return]

    def _kept_pool(self, target: _Target) -> httpcore.ConnectionPool:
        scheme = urlsplit(target.url).scheme.lower()
        key = (scheme, target.host, target.port, str(target.address))
        with self._kept_lock:
            pool = self._kept.get(key)
            if pool is not None:
                self._kept.move_to_end(key)
                return pool
            pool = self._pinned_pool(target.address, self._current_deadline, self.policy.max_concurrent)
            self._kept[key] = pool
            evicted = self._kept.popitem(last=False)[1] if len(self._kept) > KEPT_TARGETS else None
        if evicted is not None:
            evicted.close()  # a request still on it fails and is retried as any failed delivery
        return pool

    def _send(
        self,
        pool: httpcore.ConnectionPool,
        target: _Target,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep_bytes: int,
        deadline: Deadline,
    ) -> tuple[int, bytes]:
        timeouts = {name: deadline.clamp(None) for name in ("connect", "read", "write", "pool")}
        extensions = {"timeout": timeouts}
        with pool.stream("POST", target.url, headers=headers, content=body, extensions=extensions) as reply:
            kept, read = bytearray(), 0
            for chunk in reply.iter_stream():
                kept += chunk[: max(0, keep_bytes - len(kept))]
                read += len(chunk)
                if read > DRAIN_BYTES:
                    break  # a long answer is not ours to read (its connection is not kept)
                deadline.clamp(None)
            return reply.status, bytes(kept)

    def check(self, url: str) -> None:
        """Refuse a URL the policy would never fetch (scheme, host, address), without fetching it."""
        self._target(url, Deadline(self.policy.deadline_s))

    def _failed(self, url: str, reason: str) -> FetchFailed:
        log.info("outbound fetch refused or failed", extra={"url": url, "reason": reason})
        return FetchFailed(url, reason)

    def _follow(self, url: str, limit: int, deadline: Deadline, sink: _CountingSink | None = None) -> Fetched:
        current = url
        for _hop in range(self.policy.max_redirects + 1):
            target = self._target(current, deadline)
            status, headers, body = self._one_request(target, limit, deadline, sink)
            if status in REDIRECTS:
                location = headers.get("location")
                if not location:
                    raise self._failed(url, f"redirect {status} without a Location")
                current = urljoin(current, location)
                continue
            if not 200 <= status < 300:
                raise self._failed(url, f"answered HTTP {status}")
            content_type = headers.get("content-type", "").split(";")[0].strip() or None
            return Fetched(body, content_type, current)
        raise self._failed(url, f"more than {self.policy.max_redirects} redirects")

    def _target(self, url: str, deadline: Deadline) -> _Target:
        """Parse, resolve once and judge the address this hop will connect to."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise self._failed(url, f"scheme {scheme!r} is not http or https")
        try:
            host, port = parts.hostname, parts.port or SCHEMES[scheme]
        except ValueError:
            raise self._failed(url, "bad port") from None
        if not host:
            raise self._failed(url, "no host")
        host = _normal_host(host)
        addresses = self._resolve(url, host, port, deadline)
        refused = [a for a in addresses if not is_public(a) and not self.policy.allow.allows(host, port, a)]
        if refused:
            raise self._failed(url, f"{host} resolves to an address that is not allowed ({refused[0]})")
        return _Target(url, host, port, addresses[0])

    def _resolve(self, url: str, host: str, port: int, deadline: Deadline) -> list[IPAddress]:
        lookup = self._resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = lookup.result(timeout=max(0.0, deadline.remaining()))
        except FutureTimeout:
            lookup.cancel()  # still queued behind stuck lookups: never started
            raise self._failed(url, f"cannot resolve {host} before the deadline") from None
        except (OSError, UnicodeError) as exc:
            raise self._failed(url, f"cannot resolve {host}: {exc}") from None
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise self._failed(url, f"{host} has no address")
        return addresses

    def _one_request(
        self, target: _Target, limit: int, deadline: Deadline, sink: _CountingSink | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = [(b"User-Agent", self.policy.user_agent.encode()), (b"Accept-Encoding", b"identity")]
        timeouts = {name: deadline.clamp(None) for name in ("connect", "read", "write", "pool")}
        with (
            self._pinned_pool(target.address, lambda: deadline) as pool,
            pool.stream("GET", target.url, headers=headers, extensions={"timeout": timeouts}) as response,
        ):
            answer = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
            if response.status in REDIRECTS or not 200 <= response.status < 300:
                return response.status, answer, b""
            declared = answer.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise TooLarge()
            body = bytearray()
            for chunk in response.iter_stream():
                if sink is not None:  # streamed to the caller's file: only the count is kept
                    sink.write(chunk)
                    if sink.written > limit:
                        raise TooLarge()
                else:
                    body += chunk
                    if len(body) > limit:
                        raise TooLarge()
                deadline.clamp(None)
            return response.status, answer, bytes(body)
