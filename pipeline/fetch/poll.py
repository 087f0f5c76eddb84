"""Polling one feed: conditional GET -> parse -> items, and the feed's next state.

`poll_feed` is pure apart from the injected HTTP client (and the optional host map and
known-items lookup): it takes the feed's current `FeedState` and returns a `PollResult` with the
new state and the parsed items; the caller commits both in one transaction
(`Store.record_poll`), which is what makes a crash lose nothing.

State rules (the tunables are the fields of `PollPolicy`):

* 304 Not Modified, or a 200 whose body hash equals the last one: nothing to parse.
* Validator self-check: every `self_check_every`-th 304 in a row, and at least once every
  `self_check_max_age`, a 304 is followed by one unconditional GET. If that body's hash differs
  from the last one, the server answered 304 for content that had changed: the feed gets
  `validators_trusted=False` and is fetched unconditionally from then on (the body-hash check
  still spares the parser).
* Interval: the configured `interval_minutes`, stretched when the feed stays idle (after
  `idle_grace` polls in a row without new items, each further idle poll multiplies it by
  `idle_factor`); new items halve the idle count, so a feed with news at every poll is back at
  its configured interval after a few polls. Server hints (RSS ttl, sy:updatePeriod, Cache-Control
  max-age, Expires) only ever slow polling down. The result is kept between
  max(min_interval, configured) and max(max_interval, configured); a server hint may go beyond
  max_interval up to `max_hint_interval`. The interval in force is stored in the state.
* Jitter: next_due_at = now + interval * (1 + jitter * U[0, 1)), so feeds configured alike drift
  apart instead of firing together, and no feed is polled sooner than its interval.
* Failure: the streak grows; the next poll backs off exponentially (with jitter) up to
  `MAX_BACKOFF`, or waits for the server's Retry-After when it sent one (RFC 9110 §10.2.3). A 429
  or 503 with Retry-After also holds the whole host (`pipeline.fetch.hosts.HostBackoff`): feeds on
  a held host are not fetched; their next poll moves to the host's not-before time (outcome
  "host_backoff", no request sent).
* Permanent failures (404, 410, not a feed, ...) `disable_after` times in a row disable the feed:
  `disabled=True`, retried once per `disabled_retry`, enabled again by the first success.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from pipeline.config import Source
from pipeline.errors import FetchError, PermanentFetchError, TransientFetchError
from pipeline.fetch.hosts import HostBackoff, host_of
from pipeline.fetch.http import HttpClient, Response
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
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
_IDLE_CAP = 64  # idle_polls stops counting here (the interval is long capped by then)


@dataclass(frozen=True)
class PollPolicy:
    """How often and how politely feeds are polled. Defaults are the production values."""

    min_interval: timedelta = timedelta(minutes=5)  # floor of the adapted interval
    max_interval: timedelta = timedelta(hours=6)  # ceiling of the idle stretch
    max_hint_interval: timedelta = timedelta(hours=24)  # ceiling when a server hint asks for slower
    jitter: float = 0.15  # next_due_at = now + interval * (1 + jitter * U[0,1))
    idle_grace: int = 3  # idle polls before the interval starts to stretch
    idle_factor: float = 1.5  # stretch per further idle poll
    self_check_every: int = 10  # every K-th 304 in a row is verified by an unconditional GET
    self_check_max_age: timedelta = timedelta(days=1)  # ... and at least this often
    disable_after: int = 5  # permanent errors in a row before the feed is disabled
    disabled_retry: timedelta = timedelta(days=1)  # how often a disabled feed is retried
    max_retry_after: timedelta = timedelta(days=1)  # Retry-After values are capped at this


DEFAULT_POLICY = PollPolicy()


@dataclass(frozen=True)
class PollResult:
    state: FeedState
    items: tuple[FeedItem, ...]
    outcome: str  # ok, not_modified, unchanged, error, host_backoff
    status: int | None
    error_kind: str | None
    error: str | None
    duration_ms: float
    new_items: int = 0  # items not stored before (as far as the known-items lookup tells)
    self_checked: bool = False  # a 304 was verified by an unconditional GET during this poll


def is_due(state: FeedState | None, now: datetime) -> bool:
    return state is None or state.next_due_at is None or state.next_due_at <= now


def backoff(streak: int, interval: timedelta, rng: random.Random) -> timedelta:
    """interval * 2^(streak-1), capped, with +-20% jitter."""
    base = min(MAX_BACKOFF, interval * (2 ** min(30, max(0, streak - 1))))
    return base * (0.8 + 0.4 * rng.random())


# ---------------------------------------------------------------------------------------------
# Server hints

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})\"?", re.IGNORECASE)


def header_hint_minutes(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long the response says it stays fresh, in minutes: Cache-Control max-age wins over
    Expires (RFC 9111 §5.3); None without a usable hint. `no-cache`/`no-store` give no hint."""
    cache_control = headers.get("cache-control", "")
    if re.search(r"no-cache|no-store", cache_control, re.IGNORECASE):
        return None
    match = _MAX_AGE.search(cache_control)
    if match:
        seconds = int(match.group(1))
        return seconds / 60 if seconds > 0 else None
    expires = headers.get("expires")
    if not expires:
        return None
    try:
        when = parsedate_to_datetime(expires)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    reference = now
    date = headers.get("date")
    if date:
        try:
            server_now = parsedate_to_datetime(date)
            if server_now is not None and server_now.tzinfo is not None:
                reference = server_now  # compare with the server's clock, not ours
        except (TypeError, ValueError, IndexError):
            pass
    seconds = (when - reference).total_seconds()
    return seconds / 60 if seconds > 0 else None


def adapt_interval(
    source: Source, idle_polls: int, hint_minutes: float | None, policy: PollPolicy = DEFAULT_POLICY
) -> timedelta:
    """The poll interval for a feed idle `idle_polls` times in a row, given the server's hint."""
    configured = timedelta(minutes=source.interval_minutes)
    low = max(policy.min_interval, configured)
    high = max(policy.max_interval, configured)
    stretch = policy.idle_factor ** min(_IDLE_CAP, max(0, idle_polls - policy.idle_grace))
    interval = min(high, max(low, configured * stretch))
    if hint_minutes:
        hinted = min(max(high, policy.max_hint_interval), timedelta(minutes=hint_minutes))
        interval = max(interval, hinted)
    return interval


def _next_due(now: datetime, interval: timedelta, policy: PollPolicy, rng: random.Random) -> datetime:
    return now + interval * (1 + policy.jitter * rng.random())


def _combine(*hints: float | None) -> float | None:
    present = [h for h in hints if h]
    return max(present) if present else None


# ---------------------------------------------------------------------------------------------


def poll_feed(
    source: Source,
    state: FeedState | None,
    client: HttpClient,
    *,
    now: datetime,
    rng: random.Random | None = None,
    clock=time.monotonic,
    policy: PollPolicy = DEFAULT_POLICY,
    hosts: HostBackoff | None = None,
    known: Callable[[Sequence[str]], set[str]] | None = None,
) -> PollResult:
    """Poll one feed. `hosts` is the shared host-backoff map; `known(item_ids)` returns the ids
    already stored (without it every parsed item counts as new for the interval adaptation)."""
    rng = rng or random.Random()
    state = state or FeedState(feed_id=source.id)
    configured = timedelta(minutes=source.interval_minutes)
    host = host_of(source.url)
    started = clock()

    def elapsed() -> float:
        return (clock() - started) * 1000

    if hosts is not None:
        held_until = hosts.not_before(host, now)
        if held_until is not None:
            deferred = replace(state, next_due_at=held_until)
            return PollResult(deferred, (), "host_backoff", None, None, None, elapsed())

    trusted = state.validators_trusted is not False
    idle = state.idle_polls or 0
    base = replace(state, last_attempt_at=now)
    try:
        resp = client.get(
            source.url,
            etag=state.etag if trusted else None,
            last_modified=state.last_modified if trusted else None,
            accept=FEED_ACCEPT,
        )
        self_checked = False
        if resp.not_modified:
            count = (state.not_modified_count or 0) + 1
            check_due = count >= policy.self_check_every or (
                state.last_full_fetch_at is None or now - state.last_full_fetch_at >= policy.self_check_max_age
            )
            if not (check_due and state.body_hash):
                idle = min(_IDLE_CAP, idle + 1)
                hint = _combine(state.feed_hint_minutes, header_hint_minutes(resp.headers, now))
                interval = adapt_interval(source, idle, hint, policy)
                new_state = replace(
                    base,
                    etag=resp.etag or state.etag,
                    last_modified=resp.last_modified or state.last_modified,
                    last_success_at=now,
                    last_status=304,
                    last_error=None,
                    last_error_kind=None,
                    error_streak=0,
                    permanent_streak=0,
                    disabled=False,
                    not_modified_count=count,
                    idle_polls=idle,
                    interval_minutes=interval.total_seconds() / 60,
                    next_due_at=_next_due(now, interval, policy, rng),
                )
                return PollResult(new_state, (), "not_modified", 304, None, None, elapsed())
            # Verify the 304: the same URL again, unconditionally.
            resp = client.get(source.url, accept=FEED_ACCEPT)
            self_checked = True
        return _full_response(
            source, state, base, resp, now=now, rng=rng, policy=policy, known=known,
            self_checked=self_checked, trusted=trusted, elapsed=elapsed,
        )
    except FetchError as e:
        streak = (state.error_streak or 0) + 1
        permanent = isinstance(e, PermanentFetchError)
        permanent_streak = (state.permanent_streak or 0) + (1 if permanent else 0)
        wait = backoff(streak, configured, rng)
        if isinstance(e, TransientFetchError) and e.retry_after is not None:
            retry_after = min(policy.max_retry_after, timedelta(seconds=max(0.0, e.retry_after)))
            wait = max(wait, retry_after)
            if hosts is not None and e.status in (429, 503):
                hosts.block(host, now + retry_after, now=now)
        disabled = bool(state.disabled) or permanent_streak >= policy.disable_after
        if disabled:
            wait = max(wait, policy.disabled_retry)
        new_state = replace(
            base,
            last_status=e.status,
            last_error=str(e)[:500],
            last_error_kind=e.kind,
            error_streak=streak,
            permanent_streak=permanent_streak,
            disabled=disabled,
            next_due_at=now + wait,
        )
        return PollResult(new_state, (), "error", e.status, e.kind, str(e)[:500], elapsed())


def _full_response(
    source: Source,
    state: FeedState,
    base: FeedState,
    resp: Response,
    *,
    now: datetime,
    rng: random.Random,
    policy: PollPolicy,
    known: Callable[[Sequence[str]], set[str]] | None,
    self_checked: bool,
    trusted: bool,
    elapsed: Callable[[], float],
) -> PollResult:
    """A 200: hash-skip or parse, then the next state. Parse failures raise (kind "parse")."""
    body_hash = hashlib.sha1(resp.body).hexdigest()
    changed = body_hash != state.body_hash
    # A self-check that finds other content means the 304 just received was false.
    lied = self_checked and changed
    items: tuple[FeedItem, ...] = ()
    feed_hint = state.feed_hint_minutes
    new_count = 0
    if changed:
        parsed = parse_feed(source.id, resp.body, base_url=resp.url, headers=resp.headers, seen_at=now)
        items = parsed.items
        feed_hint = _combine(parsed.ttl_minutes, parsed.update_period_minutes)
        if items:
            ids = [it.item_id for it in items]
            new_count = len(set(ids) - known(ids)) if known is not None else len(ids)
    idle = state.idle_polls or 0
    idle = idle // 2 if new_count else min(_IDLE_CAP, idle + 1)
    interval = adapt_interval(source, idle, _combine(feed_hint, header_hint_minutes(resp.headers, now)), policy)
    new_state = replace(
        base,
        etag=resp.etag,
        last_modified=resp.last_modified,
        body_hash=body_hash,
        last_success_at=now,
        last_status=resp.status,
        last_error=None,
        last_error_kind=None,
        error_streak=0,
        permanent_streak=0,
        disabled=False,
        validators_trusted=trusted and not lied,
        not_modified_count=0,
        last_full_fetch_at=now,
        feed_hint_minutes=feed_hint,
        idle_polls=idle,
        interval_minutes=interval.total_seconds() / 60,
        next_due_at=_next_due(now, interval, policy, rng),
    )
    outcome = "ok" if changed else "unchanged"
    return PollResult(
        new_state, items, outcome, resp.status, None, None, elapsed(), new_items=new_count, self_checked=self_checked
    )
