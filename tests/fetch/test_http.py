"""HttpClient against real servers on loopback: pytest-httpserver on 127.0.0.1 and small raw socket
servers for behaviour a WSGI server cannot produce (dripping, hanging, endless bodies).

Every address used here is loopback. Fake host names only ever reach the stub resolvers.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request
from werkzeug import Response as WResponse

from pipeline.errors import PermanentFetchError, TransientFetchError
from pipeline.fetch.http import (
    HttpClient,
    HttpSettings,
    Response,
    check_address,
    decode_body,
    parse_retry_after,
)

LOOPBACK_ONLY = HttpSettings(allow_private_addresses=True, total_timeout=5.0)


# ---------------------------------------------------------------------------------------------
# Servers


@pytest.fixture(scope="module")
def web() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture(autouse=True)
def _fresh(web: HTTPServer) -> Iterator[None]:
    web.clear()
    yield
    web.clear()


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    conn.settimeout(5)
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class RawServer:
    """A TCP listener on a loopback address; `handler(conn, stop)` runs for each connection."""

    def __init__(self, handler: Callable[[socket.socket, threading.Event], None], host: str = "127.0.0.1"):
        self.host = host
        self.hits = 0
        self.sent = 0
        self._handler = handler
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.hits += 1
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, conn: socket.socket) -> None:
        try:
            self._handler(conn, self._stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(2)
        for t in self._threads:
            t.join(2)
        self._sock.close()


@pytest.fixture
def raw_servers() -> Iterator[list[RawServer]]:
    servers: list[RawServer] = []
    yield servers
    for s in servers:
        s.close()


def _raw(
    servers: list[RawServer],
    handler: Callable[[socket.socket, threading.Event], None],
    host: str = "127.0.0.1",
) -> RawServer:
    server = RawServer(handler, host)
    servers.append(server)
    return server


def _stub_resolver(table: dict[str, str]) -> Callable[..., list[tuple]]:
    """getaddrinfo look-alike that knows only `table` and never touches the network."""

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"stub resolver does not know {host}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    return resolve


# ---------------------------------------------------------------------------------------------
# Plain responses


def test_200_returns_body_final_url_and_lowercased_headers(web: HTTPServer) -> None:
    web.expect_request("/feed", headers={"User-Agent": LOOPBACK_ONLY.user_agent}).respond_with_data(
        b"<rss/>", content_type="application/rss+xml", headers={"ETag": '"v1"', "X-Thing": "a"}
    )
    with HttpClient(LOOPBACK_ONLY) as client:
        resp = client.get(web.url_for("/feed"), accept="application/rss+xml")
    assert resp.status == 200
    assert resp.body == b"<rss/>"
    assert resp.url == web.url_for("/feed")
    assert resp.headers["x-thing"] == "a"
    assert resp.etag == '"v1"'
    assert resp.content_type == "application/rss+xml"
    assert not resp.not_modified
    assert web.log[0][0].headers["Accept"] == "application/rss+xml"


def test_conditional_get_round_trip_gives_304(web: HTTPServer) -> None:
    stamp = "Tue, 03 Jun 2008 09:39:21 GMT"

    def handler(request: Request) -> WResponse:
        if (
            request.headers.get("If-None-Match") == '"abc"'
            and request.headers.get("If-Modified-Since") == stamp
        ):
            return WResponse(status=304, headers={"ETag": '"abc"'})
        return WResponse(b"fresh", headers={"ETag": '"abc"', "Last-Modified": stamp})

    web.expect_request("/c").respond_with_handler(handler)
    with HttpClient(LOOPBACK_ONLY) as client:
        first = client.get(web.url_for("/c"))
        second = client.get(web.url_for("/c"), etag=first.etag, last_modified=first.last_modified)
    assert (first.status, first.body, first.last_modified) == (200, b"fresh", stamp)
    assert second.status == 304 and second.not_modified and second.body == b""
    assert second.etag == '"abc"'


def test_429_with_retry_after_seconds(web: HTTPServer) -> None:
    web.expect_request("/r").respond_with_data("slow down", status=429, headers={"Retry-After": "7"})
    with HttpClient(LOOPBACK_ONLY) as client, pytest.raises(TransientFetchError) as err:
        client.get(web.url_for("/r"))
    assert (err.value.kind, err.value.status, err.value.retry_after) == ("http_429", 429, 7.0)


def test_429_with_retry_after_http_date(web: HTTPServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    web.expect_request("/r").respond_with_data("later", status=429, headers={"Retry-After": when})
    with HttpClient(LOOPBACK_ONLY) as client, pytest.raises(TransientFetchError) as err:
        client.get(web.url_for("/r"))
    assert err.value.kind == "http_429"
    assert err.value.retry_after is not None and 115 <= err.value.retry_after <= 122


@pytest.mark.parametrize(
    ("status", "error", "kind", "retry_after"),
    [
        (503, TransientFetchError, "http_5xx", 30.0),
        (500, TransientFetchError, "http_5xx", None),
        (502, TransientFetchError, "http_5xx", None),
        (404, PermanentFetchError, "http_4xx", None),
        (410, PermanentFetchError, "http_4xx", None),
        (403, PermanentFetchError, "http_4xx", None),
    ],
)
def test_error_statuses_are_classified(
    web: HTTPServer, status: int, error: type[Exception], kind: str, retry_after: float | None
) -> None:
    headers = {"Retry-After": "30"} if status == 503 else {}
    web.expect_request("/e").respond_with_data("no", status=status, headers=headers)
    with HttpClient(LOOPBACK_ONLY) as client, pytest.raises(error) as err:
        client.get(web.url_for("/e"))
    assert err.value.kind == kind and err.value.status == status
    if isinstance(err.value, TransientFetchError):
        assert err.value.retry_after == retry_after


def test_parse_retry_after() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after(None, now) is None


# ---------------------------------------------------------------------------------------------
# Redirects


def test_redirect_chain_within_cap_is_followed(web: HTTPServer) -> None:
    web.expect_request("/a").respond_with_data("", status=301, headers={"Location": "/b"})
    web.expect_request("/b").respond_with_data("", status=302, headers={"Location": web.url_for("/c")})
    web.expect_request("/c").respond_with_data("", status=307, headers={"Location": "d#frag"})
    web.expect_request("/d").respond_with_data("done")
    with HttpClient(LOOPBACK_ONLY) as client:
        resp = client.get(web.url_for("/a"))
    assert resp.body == b"done"
    assert resp.url == web.url_for("/d")


def test_redirect_loop_is_detected(web: HTTPServer) -> None:
    web.expect_request("/x").respond_with_data("", status=302, headers={"Location": "/y"})
    web.expect_request("/y").respond_with_data("", status=302, headers={"Location": "/x"})
    with HttpClient(LOOPBACK_ONLY) as client, pytest.raises(PermanentFetchError) as err:
        client.get(web.url_for("/x"))
    assert err.value.kind == "redirect_loop"
    assert len(web.log) == 2


def test_too_many_redirects(web: HTTPServer) -> None:
    for i in range(10):
        web.expect_request(f"/hop{i}").respond_with_data("", status=302, headers={"Location": f"/hop{i + 1}"})
    settings = HttpSettings(allow_private_addresses=True, max_redirects=3)
    with HttpClient(settings) as client, pytest.raises(PermanentFetchError) as err:
        client.get(web.url_for("/hop0"))
    assert err.value.kind == "too_many_redirects"
    assert len(web.log) == 4  # the first request plus three followed hops


def test_cookie_set_on_redirect_to_itself_is_not_a_loop(web: HTTPServer) -> None:
    def handler(request: Request) -> WResponse:
        if request.cookies.get("consent") == "yes":
            return WResponse(b"article")
        return WResponse(status=302, headers={"Location": "/page", "Set-Cookie": "consent=yes; Path=/"})

    web.expect_request("/page").respond_with_handler(handler)
    with HttpClient(LOOPBACK_ONLY) as client:
        assert client.get(web.url_for("/page")).body == b"article"
        # The cookie lived only for that chain: the next call starts without it.
        assert client.get(web.url_for("/page")).body == b"article"
    assert len(web.log) == 4


# ---------------------------------------------------------------------------------------------
# Size limits


def test_declared_length_over_cap_fails_without_reading(raw_servers: list[RawServer]) -> None:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        stop.wait(10)

    server = _raw(raw_servers, handler)
    settings = HttpSettings(allow_private_addresses=True, max_body_bytes=1_000_000, total_timeout=5)
    with HttpClient(settings) as client, pytest.raises(PermanentFetchError) as err:
        client.get(server.url())
    # too_large, not timeout: it gave up on the header alone (reading would stall until the 5 s
    # budget). The kind proves it by cause; a wall-clock bound would fail on a busy machine.
    assert err.value.kind == "too_large"


def test_streamed_body_over_cap_stops_early(raw_servers: list[RawServer]) -> None:
    chunk = b"x" * 65536
    total_offer = 1_000_000_000

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        # No Content-Length: the body ends when the connection closes, so only streaming can tell.
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        while server.sent < total_offer and not stop.is_set():
            conn.sendall(chunk)
            server.sent += len(chunk)

    server = _raw(raw_servers, handler)
    settings = HttpSettings(allow_private_addresses=True, max_body_bytes=1_000_000, total_timeout=10)
    with HttpClient(settings) as client, pytest.raises(PermanentFetchError) as err:
        client.get(server.url())
    assert err.value.kind == "too_large"
    time.sleep(0.1)
    # What the server managed to push is the cap plus what the kernel buffers on loopback.
    assert server.sent < 64_000_000


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """50 MB of zeros gzip-compressed (about 50 KB), built without holding 50 MB at once."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1_000_000)
    parts = [comp.compress(block) for _ in range(50)]
    parts.append(comp.flush())
    return b"".join(parts)


def test_gzip_bomb_stops_at_cap_with_low_memory(raw_servers: list[RawServer], gzip_bomb: bytes) -> None:
    assert len(gzip_bomb) < 200_000

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Encoding: gzip\r\nContent-Length: {len(gzip_bomb)}\r\n\r\n"
        conn.sendall(head.encode() + gzip_bomb)
        stop.wait(2)

    # A raw server rather than the WSGI one: tracemalloc sees every thread of this process, and
    # the WSGI server allocates megabytes of its own while the client runs.
    server = _raw(raw_servers, handler)
    settings = HttpSettings(allow_private_addresses=True, max_body_bytes=1_000_000)
    with HttpClient(settings) as client:
        tracemalloc.start()
        try:
            with pytest.raises(PermanentFetchError) as err:
                client.get(server.url())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert err.value.kind == "too_large"
    # The cap is 1 MB; inflating the whole 50 MB (or one 64 KB network read of it) would not fit.
    assert peak < 6_000_000, f"peak {peak} bytes while refusing a gzip bomb"


def test_gzip_and_deflate_bodies_are_decoded(web: HTTPServer) -> None:
    text = b"<rss>" + b"news " * 2000 + b"</rss>"
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    web.expect_request("/gz").respond_with_data(gzip.compress(text), headers={"Content-Encoding": "gzip"})
    web.expect_request("/two").respond_with_data(
        gzip.compress(text[:100]) + gzip.compress(text[100:]), headers={"Content-Encoding": "gzip"}
    )
    web.expect_request("/zl").respond_with_data(zlib.compress(text), headers={"Content-Encoding": "deflate"})
    web.expect_request("/raw").respond_with_data(
        raw_deflate.compress(text) + raw_deflate.flush(), headers={"Content-Encoding": "deflate"}
    )
    web.expect_request("/br").respond_with_data(b"???", headers={"Content-Encoding": "br"})
    with HttpClient(LOOPBACK_ONLY) as client:
        for path in ("/gz", "/two", "/zl", "/raw"):
            assert client.get(web.url_for(path)).body == text, path
        with pytest.raises(PermanentFetchError) as err:
            client.get(web.url_for("/br"))
    assert err.value.kind == "content_encoding"
    assert web.log[0][0].headers["Accept-Encoding"] == "gzip, deflate"


# ---------------------------------------------------------------------------------------------
# Time limits


def test_dripping_server_is_cut_off_by_total_timeout(raw_servers: list[RawServer]) -> None:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        while not stop.wait(0.1):
            conn.sendall(b"x")  # each read returns quickly, so per-read timeouts never fire

    server = _raw(raw_servers, handler)
    settings = HttpSettings(allow_private_addresses=True, total_timeout=1.0)
    start = time.monotonic()
    with HttpClient(settings) as client, pytest.raises(TransientFetchError) as err:
        client.get(server.url())
    elapsed = time.monotonic() - start
    assert err.value.kind == "timeout"
    # Without the total budget the drip never ends (until the server stops); the bound is wide
    # so a busy machine cannot fail it, and still far below "never".
    assert 0.9 <= elapsed < 10


def test_drip_then_stall_is_cut_at_the_budget_not_a_read_timeout_later(raw_servers: list[RawServer]) -> None:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(29):
            conn.sendall(b"x")
            time.sleep(0.1)
        stop.wait(30)  # stall mid-body

    server = _raw(raw_servers, handler)
    settings = HttpSettings(allow_private_addresses=True, total_timeout=3.0)
    start = time.monotonic()
    with HttpClient(settings) as client, pytest.raises(TransientFetchError) as err:
        client.get(server.url())
    elapsed = time.monotonic() - start
    assert err.value.kind == "timeout"
    # The budget cuts at 3 s; a read timeout set at the start would fire at about 2.9 s + 3 s.
    # The 2 s margin between the two keeps a loaded machine from failing the test.
    assert elapsed < 5.0


def test_hanging_server_is_cut_off(raw_servers: list[RawServer]) -> None:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        stop.wait(10)  # never answers

    server = _raw(raw_servers, handler)
    settings = HttpSettings(allow_private_addresses=True, total_timeout=0.8)
    start = time.monotonic()
    with HttpClient(settings) as client, pytest.raises(TransientFetchError) as err:
        client.get(server.url())
    assert err.value.kind == "timeout"
    assert time.monotonic() - start < 6  # the server would hang for 10 s; wide for a busy machine


# ---------------------------------------------------------------------------------------------
# Network failures


def test_connection_refused_is_transient_connect() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The port is closed again: nothing listens there.
    with HttpClient(LOOPBACK_ONLY) as client, pytest.raises(TransientFetchError) as err:
        client.get(f"http://127.0.0.1:{port}/")
    assert err.value.kind == "connect"


def test_tls_failure_is_transient_tls(raw_servers: list[RawServer]) -> None:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")  # not a TLS record

    server = _raw(raw_servers, handler)
    with HttpClient(LOOPBACK_ONLY) as client, pytest.raises(TransientFetchError) as err:
        client.get(f"https://127.0.0.1:{server.port}/")
    assert err.value.kind == "tls"


def test_unresolvable_name_is_transient_dns() -> None:
    client = HttpClient(LOOPBACK_ONLY, resolver=_stub_resolver({}))
    with client, pytest.raises(TransientFetchError) as err:
        client.get("http://nowhere.test/feed")
    assert err.value.kind == "dns"


# ---------------------------------------------------------------------------------------------
# Address guard


def test_loopback_is_refused_before_any_connection(web: HTTPServer) -> None:
    web.expect_request("/feed").respond_with_data("secret")
    with HttpClient(HttpSettings()) as client, pytest.raises(PermanentFetchError) as err:
        client.get(web.url_for("/feed"))
    assert err.value.kind == "refused"
    assert web.log == []


def test_name_resolving_to_forbidden_loopback_is_refused_while_another_is_allowed(
    raw_servers: list[RawServer],
) -> None:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    forbidden = _raw(raw_servers, handler, host="127.0.0.2")
    resolver = _stub_resolver({"feeds.example.test": "127.0.0.2"})
    only_first = HttpSettings(allow_networks=("127.0.0.1/32",))
    with HttpClient(only_first, resolver=resolver) as client, pytest.raises(PermanentFetchError) as err:
        client.get(forbidden.url(host="feeds.example.test"))
    assert err.value.kind == "refused"
    assert forbidden.hits == 0

    # Control: once 127.0.0.2 is allowed the same name connects, to the address the stub gave.
    both = HttpSettings(allow_networks=("127.0.0.1/32", "127.0.0.2/32"))
    with HttpClient(both, resolver=resolver) as client:
        assert client.get(forbidden.url(host="feeds.example.test")).body == b"ok"
    assert forbidden.hits == 1


def test_redirect_to_forbidden_address_is_refused_at_the_hop(
    web: HTTPServer, raw_servers: list[RawServer]
) -> None:
    forbidden = _raw(raw_servers, lambda conn, stop: None, host="127.0.0.2")
    web.expect_request("/to-ip").respond_with_data("", status=302, headers={"Location": forbidden.url("/x")})
    web.expect_request("/to-name").respond_with_data(
        "", status=302, headers={"Location": forbidden.url("/x", host="inside.example.test")}
    )
    web.expect_request("/to-file").respond_with_data(
        "", status=302, headers={"Location": "file:///etc/passwd"}
    )
    settings = HttpSettings(allow_networks=("127.0.0.1/32",))
    resolver = _stub_resolver({"inside.example.test": "127.0.0.2"})
    with HttpClient(settings, resolver=resolver) as client:
        for path in ("/to-ip", "/to-name", "/to-file"):
            with pytest.raises(PermanentFetchError) as err:
                client.get(web.url_for(path))
            assert err.value.kind == "refused", path
    assert len(web.log) == 3  # the allowed host was reached each time
    assert forbidden.hits == 0


def test_check_address() -> None:
    def never(*args: object, **kwargs: object) -> list[tuple]:
        raise AssertionError("resolver must not be called")

    for url in ("ftp://127.0.0.1/", "file:///etc/passwd", "javascript:alert(1)", "http://", "not a url"):
        with pytest.raises(PermanentFetchError) as err:
            check_address(url, True, never)
        assert err.value.kind == "refused", url
    for url in (
        "http://127.0.0.1/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "https://127.9.9.9/",
    ):
        with pytest.raises(PermanentFetchError) as err:
            check_address(url, False, never)
        assert err.value.kind == "refused", url
    check_address("http://127.0.0.1/", True, never)  # allowed: not even resolved

    def two(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
        ]

    check_address(
        "http://one.test/", False, _stub_resolver({"one.test": "127.0.0.1"}), allow_networks=["127.0.0.1/32"]
    )
    with pytest.raises(PermanentFetchError):  # one forbidden address among several is enough
        check_address("http://two.test/", False, two, allow_networks=["127.0.0.1/32"])
    with pytest.raises(TransientFetchError) as dns:
        check_address("http://unknown.test/", False, _stub_resolver({}))
    assert dns.value.kind == "dns"


def test_injected_transport_is_checked_before_each_hop() -> None:
    calls: list[str] = []

    def app(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, content=b"mock")

    transport = httpx.MockTransport(app)
    resolver = _stub_resolver({"ok.test": "127.0.0.1", "bad.test": "127.0.0.2"})
    settings = HttpSettings(allow_networks=("127.0.0.1/32",))
    with HttpClient(settings, transport=transport, resolver=resolver) as client:
        assert client.get("http://ok.test/a").body == b"mock"
        with pytest.raises(PermanentFetchError):
            client.get("http://bad.test/a")
    assert calls == ["http://ok.test/a"]


# ---------------------------------------------------------------------------------------------
# Content type


def test_content_type_check(web: HTTPServer, raw_servers: list[RawServer]) -> None:
    feed_types = ("application/rss+xml", "application/atom+xml", "application/xml", "text/*")
    web.expect_request("/html").respond_with_data("<html>", content_type="application/xhtml+xml")
    web.expect_request("/rss").respond_with_data("<rss/>", content_type="Application/RSS+XML; charset=utf-8")
    web.expect_request("/txt").respond_with_data("<rss/>", content_type="text/xml")
    with HttpClient(LOOPBACK_ONLY) as client:
        with pytest.raises(PermanentFetchError) as err:
            client.get(web.url_for("/html"), allowed_types=feed_types)
        assert err.value.kind == "content_type" and err.value.status == 200
        assert client.get(web.url_for("/rss"), allowed_types=feed_types).body == b"<rss/>"
        assert client.get(web.url_for("/txt"), allowed_types=feed_types).body == b"<rss/>"

    def untyped(conn: socket.socket, stop: threading.Event) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n<rss/>")

    server = _raw(raw_servers, untyped)
    with HttpClient(LOOPBACK_ONLY) as client:
        assert client.get(server.url(), allowed_types=feed_types).body == b"<rss/>"


# ---------------------------------------------------------------------------------------------
# Politeness and threads


def _overlap_probe(web: HTTPServer) -> dict[str, int]:
    state = {"now": 0, "max": 0}
    lock = threading.Lock()

    def handler(request: Request) -> WResponse:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.25)
        with lock:
            state["now"] -= 1
        return WResponse(b"slow")

    web.expect_request("/slow").respond_with_handler(handler)
    return state


def _get_in_threads(client: HttpClient, url: str, n: int) -> list[bytes]:
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(client.get(url).body)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


@pytest.mark.parametrize("concurrency", [1, 2])
def test_per_host_concurrency(web: HTTPServer, concurrency: int) -> None:
    state = _overlap_probe(web)
    settings = HttpSettings(allow_private_addresses=True, per_host_concurrency=concurrency)
    with HttpClient(settings) as client:
        results = _get_in_threads(client, web.url_for("/slow"), 4)
    assert results == [b"slow"] * 4
    assert state["max"] == concurrency


def test_min_gap_between_request_starts() -> None:
    slept: list[float] = []
    web_free = HttpClient(
        HttpSettings(allow_private_addresses=True, per_host_min_gap=0.5),
        transport=_mock_ok(),
        clock=lambda: 100.0,  # time stands still, so every wait is the full reserved gap
        sleep=slept.append,
    )
    with web_free as client:
        for _ in range(3):
            client.get("http://127.0.0.1/feed")
        client.get("http://127.0.0.2/other-host")
    assert slept == [0.5, 1.0]


def _mock_ok() -> httpx.BaseTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, content=b"ok"))


def test_shared_client_from_many_threads(web: HTTPServer) -> None:
    web.expect_request("/p").respond_with_data("page")
    settings = HttpSettings(allow_private_addresses=True, per_host_concurrency=4)
    with HttpClient(settings) as client:
        results = _get_in_threads(client, web.url_for("/p"), 16)
    assert results == [b"page"] * 16


# ---------------------------------------------------------------------------------------------
# Decoding pages


def test_text_decoding_order() -> None:
    assert decode_body("café".encode("cp1252"), "text/html; charset=windows-1252") == "café"
    # ISO-8859-1 is read as windows-1252, as browsers do: 0x93/0x94 are curly quotes.
    assert decode_body(b"\x93hi\x94", "text/html; charset=ISO-8859-1") == "\u201chi\u201d"
    meta = b'<html><head><meta charset="koi8-r"></head><body>' + "мир".encode("koi8-r")
    assert decode_body(meta, "text/html").endswith("мир")
    equiv = b'<meta http-equiv="Content-Type" content="text/html; charset=shift_jis">' + "日本".encode(
        "shift_jis"
    )
    assert decode_body(equiv, None).endswith("日本")
    xml = b'<?xml version="1.0" encoding="iso-8859-5"?><r>' + "мир".encode("iso-8859-5") + b"</r>"
    assert "мир" in decode_body(xml, None)
    assert decode_body(b"\xef\xbb\xbfbom", "text/html; charset=latin-1") == "bom"  # BOM wins
    assert decode_body(b"ok \xff", None) == "ok \ufffd"
    assert decode_body(b"x", "text/html; charset=no-such-charset") == "x"
    resp = Response(
        url="http://127.0.0.1/",
        status=200,
        headers={"content-type": "text/html; charset=utf-8"},
        body="ü".encode(),
    )
    assert resp.text() == "ü"
