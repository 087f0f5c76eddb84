"""Polling one feed: conditional GET -> parse -> items, and the feed's next state.

`poll_feed` is pure apart from the injected HTTP client: it takes the feed's current `FeedState`
and returns a `PollResult` with the new state and the parsed items; the caller commits both in
one transaction (`Store.record_poll`), which is what makes a crash lose nothing.

State rules:
* 304 Not Modified, or a 200 whose body hash equals the last one: nothing to parse.
* success: the error streak resets; next poll after the feed's interval.
* failure: the streak grows; the next poll backs off exponentially (with jitter, so feeds that
  failed together do not retry together) up to `MAX_BACKOFF`, or waits for the server's
  Retry-After when it sent one (RFC 9110 section 10.2.3).
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pipeline.config import Source
from pipeline.errors import FetchError, TransientFetchError
from pipeline.fetch.http import HttpClient
from pipeline.fetch.parse import parse_feed
from pipeline.models import FeedItem, FeedState

MAX_BACKOFF = timedelta(hours=6)
FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
    "application/x-rss+xml",
    "text/plain",  # some servers label feeds so; the parser decides
)


@dataclass(frozen=True)
class PollResult:
    state: FeedState
    items: tuple[FeedItem, ...]
    outcome: str  # ok, not_modified, unchanged, error
    status: int | None
    error_kind: str | None
    error: str | None
    duration_ms: float


def is_due(state: FeedState | None, now: datetime) -> bool:
    return state is None or state.next_due_at is None or state.next_due_at <= now


def backoff(streak: int, interval: timedelta, rng: random.Random) -> timedelta:
    """interval * 2^(streak-1), capped, with +-20% jitter."""
    base = min(MAX_BACKOFF, interval * (2 ** max(0, streak - 1)))
    return base * (0.8 + 0.4 * rng.random())


def poll_feed(
    source: Source,
    state: FeedState | None,
    client: HttpClient,
    *,
    now: datetime,
    rng: random.Random | None = None,
    clock=time.monotonic,
) -> PollResult:
    rng = rng or random.Random()
    state = state or FeedState(feed_id=source.id)
    interval = timedelta(minutes=source.interval_minutes)
    started = clock()
    base = replace(state, last_attempt_at=now)
    try:
        resp = client.get(
            source.url,
            etag=state.etag,
            last_modified=state.last_modified,
            accept="application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1",
        )
        if resp.not_modified:
            new_state = replace(
                base, last_success_at=now, last_status=304, error_streak=0, next_due_at=now + interval
            )
            return PollResult(new_state, (), "not_modified", 304, None, None, (clock() - started) * 1000)
        body_hash = hashlib.sha1(resp.body).hexdigest()
        ok_state = replace(
            base,
            etag=resp.etag,
            last_modified=resp.last_modified,
            body_hash=body_hash,
            last_success_at=now,
            last_status=resp.status,
            last_error=None,
            last_error_kind=None,
            error_streak=0,
            next_due_at=now + interval,
        )
        if body_hash == state.body_hash:
            return PollResult(ok_state, (), "unchanged", resp.status, None, None, (clock() - started) * 1000)
        parsed = parse_feed(source.id, resp.body, base_url=resp.url, headers=resp.headers, seen_at=now)
        return PollResult(ok_state, parsed.items, "ok", resp.status, None, None, (clock() - started) * 1000)
    except FetchError as e:
        streak = state.error_streak + 1
        wait = backoff(streak, interval, rng)
        if isinstance(e, TransientFetchError) and e.retry_after is not None:
            wait = max(wait, timedelta(seconds=e.retry_after))
        new_state = replace(
            base,
            last_status=e.status,
            last_error=str(e)[:500],
            last_error_kind=e.kind,
            error_streak=streak,
            next_due_at=now + wait,
        )
        return PollResult(new_state, (), "error", e.status, e.kind, str(e)[:500], (clock() - started) * 1000)
