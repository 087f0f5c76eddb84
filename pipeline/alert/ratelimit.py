"""Per-channel rate limits: a token bucket, and holds set by a 429's Retry-After.

Slack allows about one message per second per channel and answers 429 with Retry-After beyond
it. `ChannelLimiter.acquire(channel)` waits until the channel's bucket has a token (rate tokens a
second, at most `burst`), so newsmon itself never goes above the rate; `hold(channel, seconds)`
after a 429 stops every call to that channel until the time has passed (`held()` says so, and
the caller moves on to other work instead of sleeping). Holds are written to the store by the
caller, so they bind after a restart too. A fresh limiter starts with empty buckets: the first
post after a (re)start waits one interval, so a post made just before a crash and one made just
after cannot come closer than the rate allows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    hold_until: float = 0.0


class ChannelLimiter:
    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting for tokens (progress and tests)

    def _bucket(self, channel: str, now: float) -> _Bucket:
        b = self._buckets.get(channel)
        if b is None:
            b = self._buckets[channel] = _Bucket(tokens=0.0, stamp=now)
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        return b

    def held(self, channel: str) -> float:
        """Seconds the channel is still held by a Retry-After (0 when free)."""
        with self._lock:
            b = self._buckets.get(channel)
            return max(0.0, b.hold_until - self._monotonic()) if b else 0.0

    def hold(self, channel: str, seconds: float) -> None:
        with self._lock:
            now = self._monotonic()
            b = self._bucket(channel, now)
            b.hold_until = max(b.hold_until, now + seconds)
            b.tokens = 0.0

    def settle(self, channel: str) -> None:
        """The call that took the last token has been answered: count the interval from now.

        Counting from the answer rather than from the send means the previous request has surely
        reached the server when the interval starts, so arrivals there are never closer than
        1/rate, however late the network delivered the previous one."""
        with self._lock:
            now = self._monotonic()
            b = self._bucket(channel, now)
            b.tokens = min(b.tokens, 0.0)
            b.stamp = now

    def acquire(self, channel: str) -> None:
        """Take one token, waiting for it (and for a hold to end) as long as needed."""
        while True:
            with self._lock:
                now = self._monotonic()
                b = self._bucket(channel, now)
                wait = max(b.hold_until - now, (1.0 - b.tokens) / self.rate if b.tokens < 1.0 else 0.0)
                if wait <= 0:
                    b.tokens -= 1.0
                    return
            self.waited += wait
            self._sleep(wait)
