"""The one HTTP client newsmon uses for feeds and article pages.

Contract
--------
`HttpClient.get(url)` performs a GET, follows redirects itself, and either returns a `Response`
(2xx with the body, or 304 with an empty body) or raises a `FetchError` whose `kind` says what
went wrong. Callers branch on Transient vs Permanent only:

    Transient (retry later)                 Permanent (retrying will not help)
    timeout      connect/read/total budget  refused             private address or not http(s)
    dns          name did not resolve       http_4xx            404, 410 and every other 4xx
    connect      TCP connect failed         http_3xx            a 3xx that cannot be followed
    tls          TLS handshake/certificate  redirect_loop       a hop came back to a visited URL
    network      connection dropped         too_many_redirects  more than max_redirects hops
    protocol     malformed HTTP             too_large           body over max_body_bytes
    http_429     retry_after when given     content_type        media type not in allowed_types
    http_5xx     retry_after on 503         content_encoding    an encoding we did not offer
                                            decode              corrupt gzip/deflate body

Guarantees
----------
* Address guard: every hop's host is resolved through the client's resolver and each resolved
  address is checked (loopback, private, link-local, multicast, reserved, unspecified, not
  globally routable, cloud metadata) unless `allow_private_addresses`; `allow_networks` exempts
  chosen CIDRs. With the default transport the connection is then made to the checked address
  itself, so a name that re-resolves elsewhere between check and connect (DNS rebinding) cannot
  slip through. With an injected transport the client cannot see where the transport connects,
  so it checks before each hop and relies on the transport resolving the same way.
* Budget: `total_timeout` is wall-clock for the whole exchange including redirects and the body.
  httpx timeouts are per read, so a server that drips a byte at a time is also checked between
  chunks, and a watchdog shuts the socket when the budget runs out while a read is blocked.
* Size: the body is decompressed by this module, with the output of each step bounded by what is
  left of `max_body_bytes`, so a gzip bomb costs memory in proportion to the cap (about twice
  it), not to what it would inflate to.
* Politeness: at most `per_host_concurrency` requests in flight per host and at least
  `per_host_min_gap` seconds between request starts to one host. The queue wait for the first
  hop is not charged to the budget.
* Thread-safe: one client is shared by a thread pool. No cookies, proxies or credentials are
  taken from the environment; cookies set during a redirect chain live only for that chain.

The body is left as bytes: feeds go to feedparser raw (it does its own XML encoding detection);
`Response.text()` decodes pages.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import httpcore
import httpx

from pipeline.errors import FetchError, PermanentFetchError, TransientFetchError

Resolver = Callable[..., list[tuple[Any, ...]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 9110 §15.4: the redirect codes that carry a Location to follow. 300 and 304 are not redirects
# to follow automatically; 305/306 are deprecated/unused.
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

# Cloud instance-metadata endpoints. The IPv4 ones already fall in link-local / shared space, but
# naming them keeps the refusal message explicit; the IPv6 one (AWS) sits in fd00::/8.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
)


@dataclass(frozen=True)
class HttpSettings:
    user_agent: str = "newsmon/0.1 (+https://github.com/newsmon/newsmon)"
    connect_timeout: float = 5.0
    total_timeout: float = 20.0  # wall-clock budget for the whole response incl. body
    max_body_bytes: int = 5_000_000  # decompressed bytes, enforced while streaming
    max_redirects: int = 5
    allow_private_addresses: bool = False  # loopback/private/link-local/metadata/reserved refused unless True
    per_host_concurrency: int = 2
    per_host_min_gap: float = 0.0  # seconds between request starts to one host
    allow_networks: tuple[str, ...] = ()  # CIDRs exempt from the guard, e.g. an intranet feed host


@dataclass(frozen=True)
class Response:
    url: str  # final URL after redirects
    status: int  # 2xx, or 304 for not-modified
    headers: dict[str, str]  # lower-cased names
    body: bytes  # b"" for 304

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")

    @property
    def content_type(self) -> str | None:
        """The media type without parameters, lower-cased (None when the header is missing)."""
        return _media_type(self.headers.get("content-type"))

    def text(self) -> str:
        """The body decoded: BOM, then the header charset, then a <meta>/XML declaration, then UTF-8."""
        return decode_body(self.body, self.headers.get("content-type"))


# ---------------------------------------------------------------------------------------------
# Address guard


def _forbidden_reason(ip: IPAddress, allow_networks: Iterable[IPNetwork] = ()) -> str | None:
    """Why `ip` must not be contacted, or None when it may be."""
    if any(ip in net for net in allow_networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 form that embeds an IPv4 address is judged by that address.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return _forbidden_reason(embedded, allow_networks)
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata endpoint"
    for attr in (
        "is_loopback",
        "is_link_local",
        "is_private",
        "is_multicast",
        "is_reserved",
        "is_unspecified",
    ):
        if getattr(ip, attr):
            return attr[3:].replace("_", "-")
    if not ip.is_global:
        return "not globally routable"
    return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _resolve_checked(
    host: str,
    port: int,
    resolver: Resolver,
    allow_private: bool,
    allow_networks: Iterable[IPNetwork] = (),
) -> list[str]:
    """Resolve `host` and return its addresses, refusing the host if ANY address is forbidden.

    Refusing on any (not all) forbidden address matters: the connection may go to any of them.
    """
    literal = _ip_literal(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise TransientFetchError(f"cannot resolve {host!r}: {exc}", kind="dns") from exc
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise TransientFetchError(f"{host!r} resolved to no address", kind="dns")
    if not allow_private:
        networks = tuple(allow_networks)
        for ip in addresses:
            reason = _forbidden_reason(ip, networks)
            if reason is not None:
                raise PermanentFetchError(
                    f"refused {host!r}: it resolves to {ip} ({reason}); to fetch it, add its network to "
                    f"the setting fetch.allow_networks (e.g. [{ipaddress.ip_network(ip)}])",
                    kind="refused",
                )
    return [str(ip) for ip in addresses]


def _parse_target(url: str) -> httpx.URL:
    """Parse `url`, refusing anything but an absolute http(s) URL with a host."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise PermanentFetchError(f"refused malformed URL {url!r}: {exc}", kind="refused") from exc
    if target.scheme not in ("http", "https"):
        raise PermanentFetchError(f"refused {url!r}: only http and https are fetched", kind="refused")
    if not target.raw_host:
        raise PermanentFetchError(f"refused {url!r}: no host", kind="refused")
    return target.copy_with(fragment=None)


def _host_of(target: httpx.URL) -> str:
    return target.raw_host.decode("ascii").lower()


def check_address(
    url: str,
    allow_private: bool,
    resolver: Resolver = socket.getaddrinfo,
    *,
    allow_networks: Iterable[str | IPNetwork] = (),
) -> None:
    """Raise PermanentFetchError(kind="refused") unless `url` is http(s) to an allowed address.

    Resolution failure raises TransientFetchError(kind="dns"). With `allow_private` the host is
    not resolved at all (only the scheme is checked).
    """
    target = _parse_target(url)
    if allow_private:
        return
    networks = tuple(
        ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n for n in allow_networks
    )
    _resolve_checked(_host_of(target), target.port or _default_port(target), resolver, False, networks)


def _default_port(target: httpx.URL) -> int:
    return 443 if target.scheme == "https" else 80


class _PinnedBackend(httpcore.NetworkBackend):
    """Resolves through the client's guard and connects to a checked address, never re-resolving."""

    def __init__(self, resolve: Callable[[str, int], list[str]]) -> None:
        self._resolve = resolve
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for ip in self._resolve(host, port):
            try:
                # TLS still verifies and sends SNI for `host`: httpcore takes the server name from
                # the request's origin, not from the address connected to.
                return self._inner.connect_tcp(
                    ip, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None  # _resolve returns at least one address or raises
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's transport running on a connection pool built over the pinned backend.

    httpx does not accept a network backend, so this sets the pool its request handling uses
    (`self._pool`) instead of calling its constructor. The check makes an httpx upgrade that
    renames the attribute fail when the client is built rather than bypass the guard silently.
    """

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        if "_pool" not in httpx.HTTPTransport.handle_request.__code__.co_names:
            raise RuntimeError("this httpx version no longer keeps its pool in HTTPTransport._pool")
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )


# ---------------------------------------------------------------------------------------------
# Politeness


class _HostGate:
    """A semaphore per host plus a reserved start time per host (min gap between starts)."""

    def __init__(
        self, concurrency: int, min_gap: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ):
        self._concurrency = max(1, concurrency)
        self._min_gap = max(0.0, min_gap)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    @contextmanager
    def slot(self, host: str, timeout: float | None) -> Iterator[None]:
        with self._lock:
            sem = self._slots.get(host)
            if sem is None:
                sem = self._slots[host] = threading.Semaphore(self._concurrency)
        if not sem.acquire(timeout=timeout):
            raise TransientFetchError(
                f"no free connection slot for {host} within the time budget", kind="timeout"
            )
        try:
            if self._min_gap:
                # Reserve a start time under the lock so that concurrent callers get distinct,
                # evenly spaced slots, then wait outside it.
                with self._lock:
                    now = self._clock()
                    start = max(now, self._next_start.get(host, now))
                    self._next_start[host] = start + self._min_gap
                if start > now:
                    self._sleep(start - now)
            yield
        finally:
            sem.release()


# ---------------------------------------------------------------------------------------------
# Body decoding


class _TooLarge(Exception):
    pass


class _BoundedDecoder:
    """Content-Encoding decoder whose output never exceeds what the caller has room for.

    Only the codings we offer in Accept-Encoding (RFC 9110 §8.4.1) are accepted.
    """

    def __init__(self, coding: str) -> None:
        coding = coding.strip().lower()
        if coding in ("", "identity"):
            self._wbits: int | None = None
        elif coding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif coding == "deflate":
            self._wbits = zlib.MAX_WBITS
        else:
            raise PermanentFetchError(f"unsupported Content-Encoding {coding!r}", kind="content_encoding")
        self._coding = coding
        self._obj = zlib.decompressobj(self._wbits) if self._wbits is not None else None
        self._started = False  # any output produced yet (deflate fallback decision)
        self._members_done = 0  # completed gzip members

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode `data`; raise _TooLarge if the output would exceed `room` bytes."""
        if self._obj is None:
            if len(data) > room:
                raise _TooLarge
            return data
        out = bytearray()
        while data:
            try:
                # max_length caps this step's output; one byte over the room proves "too large".
                piece = self._obj.decompress(data, room - len(out) + 1)
            except zlib.error as exc:
                if self._coding == "deflate" and not self._started:
                    # "deflate" is meant to be zlib-wrapped (RFC 9110 §8.4.1.2) but some servers
                    # send raw deflate; retry once without the wrapper.
                    self._coding = "raw-deflate"
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                if self._members_done:
                    return bytes(out)  # trailing garbage after a complete gzip member: ignore it
                raise PermanentFetchError(f"corrupt {self._coding} body: {exc}", kind="decode") from exc
            self._started = self._started or bool(piece)
            out += piece
            if len(out) > room:
                raise _TooLarge
            if self._obj.eof:
                # Concatenated gzip members are one body (RFC 1952 §2.2).
                data = self._obj.unused_data
                self._members_done += 1
                if data and self._wbits == 16 + zlib.MAX_WBITS:
                    self._obj = zlib.decompressobj(self._wbits)
                    continue
                break
            data = self._obj.unconsumed_tail  # empty unless max_length was hit, which raised above
        return bytes(out)

    def finish(self, room: int) -> bytes:
        if self._obj is None:
            return b""
        rest = self._obj.flush()
        if len(rest) > room:
            raise _TooLarge
        return rest


class _Watchdog:
    """Shuts the response's socket when the budget runs out, waking a read blocked in recv()."""

    def __init__(self, response: httpx.Response, seconds: float) -> None:
        self.fired = False
        self._done = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None
        stream = response.extensions.get("network_stream")
        if stream is not None:
            try:
                self._sock = stream.get_extra_info("socket")
            except Exception:  # a transport without sockets (tests, custom): the per-chunk check remains
                self._sock = None
        if self._sock is not None:
            self._timer = threading.Timer(max(0.0, seconds), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done or self._sock is None:
                return
            self.fired = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        # Must run before the response is closed: after that the connection may be back in the
        # pool serving another request, and shutting it down then would hurt that request.
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


# ---------------------------------------------------------------------------------------------
# Helpers for headers


def _media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    return media or None


def _type_allowed(media: str | None, allowed: tuple[str, ...]) -> bool:
    if media is None:
        return True  # a missing Content-Type is common on small feed hosts; let the parser judge
    for entry in allowed:
        entry = entry.strip().lower()
        if entry == media or entry in ("*/*", "*"):
            return True
        if entry.endswith("/*") and media.split("/", 1)[0] == entry[:-2]:
            return True
    return False


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.

    A date in the past gives 0.0; anything unparseable gives None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"[0-9]+", value):
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 9110 §5.6.7: HTTP-dates are always GMT
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _server_now(headers: httpx.Headers) -> datetime:
    """The server's clock (Date header) if given: Retry-After dates are relative to it."""
    date = headers.get("date")
    if date:
        try:
            parsed = parsedate_to_datetime(date)
            if parsed is not None:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError):
            pass
    return datetime.now(UTC)


def _flat_headers(headers: httpx.Headers) -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in headers.multi_items():
        name = name.lower()
        # RFC 9110 §5.3: repeated fields combine with commas (Set-Cookie is the known exception,
        # and it is of no use to callers here).
        flat[name] = f"{flat[name]}, {value}" if name in flat else value
    return flat


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kinds):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _transport_error(exc: httpx.HTTPError, url: str) -> FetchError:
    if isinstance(exc, httpx.TimeoutException):
        return TransientFetchError(f"timeout fetching {url}: {exc}", kind="timeout")
    if _caused_by(exc, (ssl.SSLError, ssl.CertificateError)):
        return TransientFetchError(f"TLS failure for {url}: {exc}", kind="tls")
    if isinstance(exc, httpx.ConnectError):
        if _caused_by(exc, (socket.gaierror,)):
            return TransientFetchError(f"cannot resolve host of {url}: {exc}", kind="dns")
        return TransientFetchError(f"cannot connect to {url}: {exc}", kind="connect")
    if isinstance(exc, httpx.ProtocolError):
        return TransientFetchError(f"malformed HTTP from {url}: {exc}", kind="protocol")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return PermanentFetchError(f"refused {url}: {exc}", kind="refused")
    return TransientFetchError(f"network error fetching {url}: {exc}", kind="network")


# ---------------------------------------------------------------------------------------------
# The client


class HttpClient:
    """Polite, hardened GET for feeds and pages. See the module docstring for the contract."""

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or HttpSettings()
        self._resolver: Resolver = resolver or socket.getaddrinfo
        self._allow_networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in self.settings.allow_networks
        )
        self._clock = clock
        self._gate = _HostGate(
            self.settings.per_host_concurrency, self.settings.per_host_min_gap, clock, sleep
        )
        self._pinned = transport is None
        self._owns_transport = transport is None
        self._transport: httpx.BaseTransport = transport or _GuardedTransport(
            _PinnedBackend(self._resolve_for_connect)
        )

    # -- guard ------------------------------------------------------------------------------

    def _resolve_for_connect(self, host: str, port: int) -> list[str]:
        return _resolve_checked(
            host, port, self._resolver, self.settings.allow_private_addresses, self._allow_networks
        )

    def _check_hop(self, url: str) -> httpx.URL:
        target = _parse_target(url)
        if self.settings.allow_private_addresses:
            return target
        host = _host_of(target)
        if not self._pinned or _ip_literal(host) is not None:
            # An injected transport connects on its own, so the name is checked here. An IP
            # literal costs no lookup, so it is refused before it takes a slot at its host.
            self._resolve_for_connect(host, target.port or _default_port(target))
        return target

    # -- public -----------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
        allowed_types: tuple[str, ...] | None = None,
    ) -> Response:
        """GET `url`, following redirects; see the module docstring for the errors raised.

        `etag`/`last_modified` are the validators of the last 200 and make the request
        conditional. `allowed_types` lists acceptable media types ("application/rss+xml",
        "text/*"); parameters such as charset are ignored and a missing Content-Type passes.
        """
        headers = {
            "User-Agent": self.settings.user_agent,
            "Accept": accept or "*/*",
            # Only what _BoundedDecoder can decode with bounded memory.
            "Accept-Encoding": "gzip, deflate",
        }
        # RFC 9110 §13.1.1/§13.1.3: validators from the last 200 make this a conditional GET. Both
        # are sent; a server that understands If-None-Match ignores If-Modified-Since.
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        cookies = httpx.Cookies()
        current = url
        seen: set[tuple[str, str]] = set()
        redirects = 0
        deadline: float | None = None
        while True:
            target = self._check_hop(current)
            hop_key = (str(target), _cookie_key(cookies))
            seen.add(hop_key)
            wait = None if deadline is None else max(0.0, deadline - self._clock())
            with self._gate.slot(_host_of(target), wait):
                if deadline is None:
                    deadline = self._clock() + self.settings.total_timeout
                response = self._send(target, headers, cookies, deadline)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_CODES and location:
                        cookies.extract_cookies(response)
                        # RFC 9110 §10.2.2: Location may be relative to the URL that was requested.
                        next_url = str(_parse_target(urljoin(str(target), location.strip())))
                        if (next_url, _cookie_key(cookies)) in seen:
                            raise PermanentFetchError(
                                f"redirect loop: {target} -> {next_url} was already visited",
                                kind="redirect_loop",
                                status=response.status_code,
                            )
                        redirects += 1
                        if redirects > self.settings.max_redirects:
                            raise PermanentFetchError(
                                f"more than {self.settings.max_redirects} redirects starting at {url}",
                                kind="too_many_redirects",
                                status=response.status_code,
                            )
                        current = next_url
                        continue
                    return self._finish(response, str(target), deadline, allowed_types)
                finally:
                    response.close()

    def close(self) -> None:
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- one hop ----------------------------------------------------------------------------

    def _remaining(self, deadline: float, url: str) -> float:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise TransientFetchError(
                f"fetching {url} took longer than {self.settings.total_timeout:g}s", kind="timeout"
            )
        return remaining

    def _send(
        self, target: httpx.URL, headers: dict[str, str], cookies: httpx.Cookies, deadline: float
    ) -> httpx.Response:
        remaining = self._remaining(deadline, str(target))
        timeout = {
            "connect": min(self.settings.connect_timeout, remaining),
            "read": remaining,
            "write": remaining,
            "pool": remaining,
        }
        request = httpx.Request("GET", target, headers=headers, extensions={"timeout": timeout})
        cookies.set_cookie_header(request)
        try:
            response = self._transport.handle_request(request)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, str(target)) from exc
        response.request = request
        return response

    def _finish(
        self, response: httpx.Response, url: str, deadline: float, allowed_types: tuple[str, ...] | None
    ) -> Response:
        status = response.status_code
        if status == 304:
            # RFC 9110 §15.4.5: the copy the caller holds is still current, and a 304 has no
            # content; RFC 9111 §4.3.4: its headers (new ETag etc.) update the stored ones.
            return Response(url=url, status=304, headers=_flat_headers(response.headers), body=b"")
        if 200 <= status < 300:
            if allowed_types is not None:
                media = _media_type(response.headers.get("content-type"))
                if not _type_allowed(media, allowed_types):
                    raise PermanentFetchError(
                        f"{url} is {media}, expected one of {', '.join(allowed_types)}",
                        kind="content_type",
                        status=status,
                    )
            body = self._read_body(response, url, deadline)
            return Response(url=url, status=status, headers=_flat_headers(response.headers), body=body)
        if status == 429 or status == 503:
            # RFC 6585 §4 (429) and RFC 9110 §15.6.4 (503) both may carry Retry-After.
            retry_after = parse_retry_after(
                response.headers.get("retry-after"), _server_now(response.headers)
            )
            kind = "http_429" if status == 429 else "http_5xx"
            raise TransientFetchError(
                f"{url} answered {status}", kind=kind, status=status, retry_after=retry_after
            )
        if status >= 500:
            raise TransientFetchError(f"{url} answered {status}", kind="http_5xx", status=status)
        if 400 <= status < 500:
            raise PermanentFetchError(f"{url} answered {status}", kind="http_4xx", status=status)
        raise PermanentFetchError(
            f"{url} answered {status}, which cannot be followed", kind="http_3xx", status=status
        )

    def _read_body(self, response: httpx.Response, url: str, deadline: float) -> bytes:
        limit = self.settings.max_body_bytes
        decoder = _BoundedDecoder(response.headers.get("content-encoding", ""))
        declared = response.headers.get("content-length", "")
        coding = response.headers.get("content-encoding", "").strip().lower()
        if coding in ("", "identity") and declared.isdigit() and int(declared) > limit:
            raise PermanentFetchError(
                f"{url} declares {declared} bytes, over the {limit}-byte cap",
                kind="too_large",
                status=response.status_code,
            )
        if response.is_stream_consumed:
            # An in-memory response (httpx.MockTransport and the like) arrives already read and
            # decoded by httpx; only the cap applies.
            if len(response.content) > limit:
                raise PermanentFetchError(
                    f"{url} body is over the {limit}-byte cap", kind="too_large", status=response.status_code
                )
            return response.content
        body = bytearray()
        watchdog = _Watchdog(response, self._remaining(deadline, url))
        try:
            for chunk in response.iter_raw():
                body += decoder.feed(chunk, limit - len(body))
                self._remaining(deadline, url)  # a server dripping bytes never trips a read timeout
            if watchdog.fired:
                # The shutdown reads as end-of-body when the length is delimited by close.
                raise TransientFetchError(
                    f"fetching {url} took longer than {self.settings.total_timeout:g}s", kind="timeout"
                )
            body += decoder.finish(limit - len(body))
        except _TooLarge:
            raise PermanentFetchError(
                f"{url} body is over the {limit}-byte cap", kind="too_large", status=response.status_code
            ) from None
        except httpx.HTTPError as exc:
            if watchdog.fired:
                raise TransientFetchError(
                    f"fetching {url} took longer than {self.settings.total_timeout:g}s", kind="timeout"
                ) from exc
            raise _transport_error(exc, url) from exc
        finally:
            watchdog.cancel()
        return bytes(body)


def _cookie_key(cookies: httpx.Cookies) -> str:
    return ";".join(sorted(f"{c.domain}|{c.path}|{c.name}={c.value}" for c in cookies.jar))


# ---------------------------------------------------------------------------------------------
# Decoding pages

_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]{1,40})""", re.IGNORECASE
)
_XML_ENCODING = re.compile(
    rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9_:.+-]{1,40})["']""", re.IGNORECASE
)
_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?\s*([^"';\s]+)""", re.IGNORECASE)

# WHATWG Encoding Standard: browsers decode these labels as windows-1252 and pages rely on it
# (curly quotes in 0x80-0x9F).
_LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"})
# A UTF-16 label found by sniffing ASCII bytes cannot be true; the same standard reads it as UTF-8.
_UTF16_LABELS = frozenset({"utf-16", "utf-16le", "utf-16be"})


def _codec(label: str | None, *, sniffed: bool) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    if label in _LATIN1_LABELS:
        label = "cp1252"
    elif sniffed and label in _UTF16_LABELS:
        label = "utf-8"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_body(body: bytes, content_type: str | None) -> str:
    """Decode a page: BOM, header charset, <meta>/XML declaration in the first 2 KB, else UTF-8."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, errors="replace")
    if content_type:
        match = _CHARSET_PARAM.search(content_type)
        codec = _codec(match.group(1), sniffed=False) if match else None
        if codec:
            return body.decode(codec, errors="replace")
    head = body[:2048]
    match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    if match:
        codec = _codec(match.group(1).decode("ascii", "replace"), sniffed=True)
        if codec:
            return body.decode(codec, errors="replace")
    return body.decode("utf-8", errors="replace")
