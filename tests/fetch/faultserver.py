"""A misbehaving HTTP server on loopback, for testing what the poller and downloader do.

`FaultServer(host="127.0.0.1")` binds a free port on one loopback address (127.0.0.x all bind
on Linux, so several servers on different addresses are different hosts to the client's per-host
limits and to the host backoff). Routes are added by path:

    srv.feed("/ok.xml")                      honest RSS: ETag/Last-Modified change with content
    srv.feed("/liar.xml", mode="liar")       304 to every conditional request, content changes
    srv.feed("/sticky.xml", mode="sticky")   content changes, ETag/Last-Modified never do
    srv.feed("/plain.xml", mode="plain")     no validators at all: every GET is a 200
    srv.status("/500.xml", 500)              a fixed status (Retry-After via retry_after=)
    srv.body("/page.html", b"...", "text/html")   a fixed body of a given type
    srv.hang("/hang.xml", seconds)           accept, then say nothing for `seconds`
    srv.drip("/drip.xml", interval)          headers, then one byte every `interval` seconds
    srv.huge("/huge.xml", nbytes)            stream `nbytes` without Content-Length
    srv.gzip_bomb("/bomb.xml", inflated)     a small gzip body that inflates to `inflated` bytes
    srv.redirect("/a", "/b")                 302 to another path (two of them make a loop)

`srv.publish(path)` adds an item to a feed, `srv.set_route(path, route)` replaces a route (a
404 feed that comes back), `srv.hits[path]` counts requests and `srv.requests` keeps
(path, headers) of every request. Feed items link to `/pages/<feed>/<n>.html`, served as HTML
articles; `/robots.txt` is 404 unless set with `srv.body`.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z, the base of the feeds' Last-Modified dates


@dataclass
class Route:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeedDoc:
    name: str
    mode: str  # honest, liar, sticky, plain
    items: list[int] = field(default_factory=list)
    version: int = 0
    extra_headers: dict[str, str] = field(default_factory=dict)
    channel_extra: str = ""  # e.g. "<ttl>120</ttl>"

    def render(self, base: str) -> bytes:
        entries = "".join(
            f"<item><title>{self.name} story {n}</title><link>{base}/pages/{self.name}/{n}.html</link>"
            f"<guid>{base}/pages/{self.name}/{n}.html</guid>"
            f"<description>Report number {n} of {self.name}.</description></item>"
            for n in reversed(self.items)
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{self.name}</title><link>{base}/</link><description>test feed</description>"
            f"{self.channel_extra}{entries}</channel></rss>"
        ).encode()

    def validators(self, body: bytes) -> tuple[str, str]:
        if self.mode == "sticky":
            return '"fixed"', formatdate(_EPOCH, usegmt=True)
        return f'"{hashlib.sha1(body).hexdigest()[:16]}"', formatdate(_EPOCH + 60 * self.version, usegmt=True)


class FaultServer:
    def __init__(self, host: str = "127.0.0.1", *, keep_requests: bool = True) -> None:
        self.host = host
        self.keep_requests = keep_requests  # off for long runs: `requests` would grow without end
        self.routes: dict[str, Route] = {}
        self.feeds: dict[str, FeedDoc] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bomb_cache: dict[int, bytes] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self)

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- routes ---------------------------------------------------------------------------------

    def set_route(self, path: str, route: Route) -> None:
        with self._lock:
            self.routes[path] = route

    def feed(self, path: str, *, mode: str = "honest", items: int = 2, headers: dict[str, str] | None = None,
             channel_extra: str = "") -> str:
        name = path.strip("/").replace("/", "-").removesuffix(".xml")
        with self._lock:
            self.feeds[path] = FeedDoc(name, mode, list(range(1, items + 1)), 0, dict(headers or {}), channel_extra)
            self.routes[path] = Route("feed")
        return self.url(path)

    def publish(self, path: str, n: int = 1) -> None:
        with self._lock:
            doc = self.feeds[path]
            for _ in range(n):
                doc.items.append((doc.items[-1] if doc.items else 0) + 1)
            doc.version += 1

    def status(self, path: str, code: int, *, retry_after: str | None = None) -> str:
        self.set_route(path, Route("status", {"code": code, "retry_after": retry_after}))
        return self.url(path)

    def body(self, path: str, content: bytes, content_type: str) -> str:
        self.set_route(path, Route("body", {"content": content, "type": content_type}))
        return self.url(path)

    def hang(self, path: str, seconds: float) -> str:
        self.set_route(path, Route("hang", {"seconds": seconds}))
        return self.url(path)

    def drip(self, path: str, interval: float, *, nbytes: int = 10_000) -> str:
        self.set_route(path, Route("drip", {"interval": interval, "nbytes": nbytes}))
        return self.url(path)

    def huge(self, path: str, nbytes: int) -> str:
        self.set_route(path, Route("huge", {"nbytes": nbytes}))
        return self.url(path)

    def gzip_bomb(self, path: str, inflated: int) -> str:
        # Compressed here, before any client asks: gzip of 50 MB takes a second or more on a
        # busy machine, and done inside the request it ran against the client's total timeout,
        # which then recorded `timeout` instead of `too_large` (the flaky [bomb] fault test).
        self._bomb(inflated)
        self.set_route(path, Route("bomb", {"inflated": inflated}))
        return self.url(path)

    def redirect(self, path: str, target: str, code: int = 302) -> str:
        self.set_route(path, Route("redirect", {"target": target, "code": code}))
        return self.url(path)

    def hits_for(self, path: str) -> int:
        with self._lock:
            return self.hits[path]

    def last_headers(self, path: str) -> dict[str, str] | None:
        with self._lock:
            for p, headers in reversed(self.requests):
                if p == path:
                    return headers
        return None

    # -- serving --------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.hits[path] += 1
            if self.keep_requests:
                self.requests.append((path, headers))
            route = self.routes.get(path)
            doc = self.feeds.get(path)
            rendered = doc.render(self.base) if doc is not None else b""
        try:
            if route is None:
                if path.startswith("/pages/"):
                    self._send(h, 200, self._article(path), "text/html; charset=utf-8")
                else:
                    self._send(h, 404, b"not found", "text/plain")
            elif route.kind == "feed":
                assert doc is not None
                self._serve_feed(h, doc, rendered, headers)
            elif route.kind == "status":
                extra = {"Retry-After": route.params["retry_after"]} if route.params["retry_after"] else {}
                self._send(h, route.params["code"], b"status page", "text/plain", extra)
            elif route.kind == "body":
                self._send(h, 200, route.params["content"], route.params["type"])
            elif route.kind == "hang":
                self._stop.wait(route.params["seconds"])
                self._send(h, 200, b"", "application/rss+xml")
            elif route.kind == "drip":
                self._drip(h, route.params["interval"], route.params["nbytes"])
            elif route.kind == "huge":
                self._huge(h, route.params["nbytes"])
            elif route.kind == "bomb":
                self._send(h, 200, self._bomb(route.params["inflated"]), "application/rss+xml",
                           {"Content-Encoding": "gzip"})
            elif route.kind == "redirect":
                self._send(h, route.params["code"], b"", "text/plain", {"Location": route.params["target"]})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, size cap): expected for several faults

    def _serve_feed(self, h: BaseHTTPRequestHandler, doc: FeedDoc, body: bytes, req: dict[str, str]) -> None:
        etag, last_modified = doc.validators(body)
        inm = req.get("if-none-match")
        ims = req.get("if-modified-since")
        if doc.mode == "liar":
            not_modified = bool(inm or ims)
        else:
            not_modified = (inm is not None and inm == etag) or (inm is None and ims == last_modified)
        extra = {"ETag": etag, "Last-Modified": last_modified, **doc.extra_headers}
        if doc.mode == "plain":
            not_modified = False
            extra = dict(doc.extra_headers)
        if not_modified:
            self._send(h, 304, b"", None, extra)
        else:
            self._send(h, 200, body, "application/rss+xml; charset=utf-8", extra)

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str | None,
              extra: dict[str, str] | None = None) -> None:
        h.send_response(code)
        if content_type:
            h.send_header("Content-Type", content_type)
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        if code != 304:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body and code != 304:
            h.wfile.write(body)

    def _drip(self, h: BaseHTTPRequestHandler, interval: float, nbytes: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Content-Length", str(nbytes))
        h.end_headers()
        for _ in range(nbytes):
            if self._stop.wait(interval):
                return
            h.wfile.write(b" ")
            h.wfile.flush()

    def _huge(self, h: BaseHTTPRequestHandler, nbytes: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        chunk = b"<!-- padding -->" * 4096
        sent = 0
        while sent < nbytes and not self._stop.is_set():
            h.wfile.write(chunk)
            sent += len(chunk)

    def _bomb(self, inflated: int) -> bytes:
        with self._lock:
            if inflated not in self._bomb_cache:
                self._bomb_cache[inflated] = gzip.compress(b"\0" * inflated, compresslevel=9)
            return self._bomb_cache[inflated]

    @staticmethod
    def _article(path: str) -> bytes:
        words = " ".join(f"{path.rsplit('/', 1)[-1]} sentence {i} of the report." for i in range(60))
        return f"<html><head><title>{path}</title></head><body><article><p>{words}</p></article></body></html>".encode()


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
