"""robots.txt for article pages (RFC 9309), cached per host.

`RobotsCache.allowed(url)` fetches `<scheme>://<host>[:port]/robots.txt` through the given
`HttpClient` (so the address guard, budget and per-host limits apply) at most once per `ttl` per
origin, and answers with `urllib.robotparser` for the client's User-Agent:

* 2xx: the rules, parsed from at most `max_bytes` of the body (RFC 9309 §2.5 asks crawlers to
  parse at least 500 KiB; the rest is ignored);
* 4xx, a redirect loop, too many redirects, or a file over the client's body cap
  ("unavailable", §2.3.1.3): everything is allowed;
* 5xx, 429, timeout or a network error ("unreachable", §2.3.1.4): everything is disallowed for
  now; that answer is cached for `error_ttl` only, so the host is asked again soon but not for
  every page. `verdict(url)` tells this case ("unreachable") from a rule that disallows the page
  ("disallow"): the downloader puts such items back in the spool for a later retry instead of
  refusing them;
* "refused" (the guard said no): allowed here, the page request itself will be refused with the
  guard's reason.

Thread-safe; concurrent callers for the same origin wait for one fetch.
"""

from __future__ import annotations

import threading
import time
import urllib.robotparser
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.errors import FetchError, PermanentFetchError
from pipeline.fetch.http import HttpClient

ROBOTS_TTL_SECONDS = 24 * 3600.0  # how long fetched rules are reused
ROBOTS_ERROR_TTL_SECONDS = 3600.0  # how long an "unreachable" (disallow all) answer is reused
ROBOTS_MAX_BYTES = 512 * 1024  # bytes of robots.txt parsed
ROBOTS_ACCEPT = "text/plain, */*;q=0.5"

ALLOW, DISALLOW, UNREACHABLE = "allow", "disallow", "unreachable"  # the answers of `verdict`


@dataclass
class _Entry:
    parser: urllib.robotparser.RobotFileParser | None  # None: a blanket answer
    allow_all: bool
    expires: float
    error: str | None = None  # why robots.txt could not be read ("unreachable": disallow for now)


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1].lower()}"


class RobotsCache:
    def __init__(
        self,
        client: HttpClient,
        *,
        user_agent: str | None = None,
        ttl: float = ROBOTS_TTL_SECONDS,
        error_ttl: float = ROBOTS_ERROR_TTL_SECONDS,
        max_bytes: int = ROBOTS_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.user_agent = user_agent or client.settings.user_agent
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._fetching: dict[str, threading.Lock] = {}
        self.fetches = 0  # robots.txt requests sent (for tests and logs)

    def allowed(self, url: str) -> bool:
        """May `url` be fetched? URLs that are not http(s) are left to the client to refuse."""
        return self.verdict(url) == ALLOW

    def verdict(self, url: str) -> str:
        """ALLOW, DISALLOW (the rules say no) or UNREACHABLE (robots.txt could not be read: no for
        now, ask again later; `unreachable_reason(url)` says why)."""
        origin = _origin(url)
        if origin is None:
            return ALLOW
        entry = self._entry(origin)
        if entry.parser is None:
            if entry.allow_all:
                return ALLOW
            return UNREACHABLE if entry.error else DISALLOW
        return ALLOW if entry.parser.can_fetch(self.user_agent, url) else DISALLOW

    def unreachable_reason(self, url: str) -> str | None:
        origin = _origin(url)
        with self._lock:
            entry = self._entries.get(origin) if origin else None
        return entry.error if entry is not None else None

    def _entry(self, origin: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(origin)
            if entry is not None and entry.expires > self._clock():
                return entry
            gate = self._fetching.setdefault(origin, threading.Lock())
        with gate:
            with self._lock:
                entry = self._entries.get(origin)
                if entry is not None and entry.expires > self._clock():
                    return entry
            entry = self._fetch(origin)
            with self._lock:
                self._entries[origin] = entry
            return entry

    def _fetch(self, origin: str) -> _Entry:
        self.fetches += 1
        try:
            resp = self.client.get(origin + "/robots.txt", accept=ROBOTS_ACCEPT)
        except PermanentFetchError as e:
            if e.kind in ("http_4xx", "redirect_loop", "too_many_redirects", "refused", "too_large",
                          "http_3xx"):
                return _Entry(None, True, self._clock() + self.ttl)
            # decode / content_encoding: the file exists but cannot be read; treat as unreachable.
            return _Entry(None, False, self._clock() + self.error_ttl, f"{e.kind}: {e}")
        except FetchError as e:
            return _Entry(None, False, self._clock() + self.error_ttl, f"{e.kind}: {e}")
        text = resp.body[: self.max_bytes].decode("utf-8", errors="replace")
        parser = urllib.robotparser.RobotFileParser()
        parser.parse(text.splitlines())
        parser.modified()
        return _Entry(parser, True, self._clock() + self.ttl)
