"""Host-wide backoff: when a server says "slow down", every feed on that host waits.

A 429 (RFC 6585 §4) or 503 (RFC 9110 §15.6.4) with Retry-After is an answer about the server,
not about one URL: polling the host's other feeds during the wait would ignore what it asked.
`HostBackoff` keeps host -> not-before time; `Daemon.poll` (through `poll_feed`) consults it
before each request and moves the feed's next poll to that time instead of sending anything.

The map is kept in memory and persisted by the daemon: `Daemon` writes the holds in force to the
store's `host_holds` table after each commit of polls that changed them, and loads the unexpired
ones when it starts (`Store.host_holds`, which also deletes expired rows). So a restart during a
hold sends nothing to the host before the time it asked for.

Hosts are compared by lower-cased host name without the port, like the per-host limits of
`pipeline.fetch.http.HttpClient`.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from urllib.parse import urlsplit

# Longest host-wide wait honoured from one Retry-After; a larger value (or a date years ahead)
# is cut to this so that one bad header cannot silence a host for good.
MAX_HOST_BACKOFF = timedelta(days=1)


def host_of(url: str) -> str:
    """The host name of `url`, lower-cased, without port or brackets ("" when there is none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class HostBackoff:
    """Thread-safe map host -> the earliest time the next request to it may start."""

    def __init__(self, max_backoff: timedelta = MAX_HOST_BACKOFF) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, datetime] = {}
        self.max_backoff = max_backoff

    def block(self, host: str, until: datetime, *, now: datetime | None = None) -> datetime:
        """Hold `host` until `until` (capped at now + max_backoff); an earlier hold never shortens
        a later one. Returns the time now in force for the host."""
        if now is not None:
            until = min(until, now + self.max_backoff)
        with self._lock:
            current = self._until.get(host)
            if current is None or until > current:
                self._until[host] = until
                current = until
            return current

    def not_before(self, host: str, now: datetime) -> datetime | None:
        """The time `host` is held until, or None when it may be contacted at `now`."""
        with self._lock:
            until = self._until.get(host)
            if until is None:
                return None
            if until <= now:
                del self._until[host]
                return None
            return until

    def held(self, now: datetime) -> dict[str, datetime]:
        """A snapshot of the hosts held at `now` (for logs and tests)."""
        with self._lock:
            return {h: t for h, t in self._until.items() if t > now}

    def clear(self, host: str) -> None:
        with self._lock:
            self._until.pop(host, None)
