"""Alert routes: which channels an alert goes to, and when a route is quiet.

A route is a name, a matcher and its channels (notifiers). Routes are tried in the order of the
settings; the first that matches takes the alert, and with `continue_matching` the later ones are
tried too (Alertmanager's `continue`). An alert no route takes goes to the default route, built
from alerts.slack / alerts.email / console as before routes existed. The ops route (alerts.ops_route)
takes only pipeline-health alerts; without one, none are sent.

Channel keys name a (route, channel) pair in the delivery and notification logs: the default
route keeps the plain channel names ("slack", "email", "console"), so logs written before routes
existed stay valid; another route's are "<route>/<channel>" ("sport/slack").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from pipeline.alert.notifiers import Notifier
from pipeline.config import QuietHoursConfig, RouteMatchConfig

DEFAULT = "default"


@dataclass(frozen=True)
class AlertFacts:
    """What routing and silences look at: the alert's topic and score, the outlets carrying the
    story, the feed that raised it and that feed's tags."""

    topic: str
    story_id: str
    score: float
    outlets: frozenset[str] = frozenset()
    feed_id: str | None = None
    feed_tags: frozenset[str] = frozenset()


@dataclass
class Route:
    name: str
    notifiers: list[Notifier]
    match: RouteMatchConfig | None = None  # None: the default route (takes what no other takes)
    continue_matching: bool = False
    quiet_hours: QuietHoursConfig | None = None
    digest: str | None = None  # "hourly" | "daily": this route gets digests, not single alerts
    digest_hour: int = 8
    ops: bool = False  # the ops route: health alerts only
    keys: dict[str, Notifier] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keys = {channel_key(self.name, n.channel): n for n in self.notifiers}

    def matches(self, facts: AlertFacts) -> bool:
        m = self.match
        if m is None:
            return True
        if m.topics and facts.topic not in m.topics:
            return False
        if facts.score < m.min_score:
            return False
        if m.outlets and not (set(m.outlets) & (facts.outlets | ({facts.feed_id} if facts.feed_id else set()))):
            return False
        return not (m.feed_tags and not set(m.feed_tags) & facts.feed_tags)

    def zone_name(self) -> str:
        return self.quiet_hours.timezone if self.quiet_hours else "UTC"

    def zone(self) -> tzinfo:
        # UTC without the time zone database: a machine without tzdata still runs the defaults.
        name = self.zone_name()
        return UTC if name == "UTC" else ZoneInfo(name)

    def is_quiet(self, now: datetime, score: float = 0.0) -> bool:
        """Whether `now` falls in the quiet hours (an alert scoring the override goes anyway)."""
        q = self.quiet_hours
        if q is None or (q.override_score is not None and score >= q.override_score):
            return False
        local = now.astimezone(self.zone()).time()
        start, end = _clock(q.start), _clock(q.end)
        if start == end:
            return False
        return start <= local < end if start < end else (local >= start or local < end)

    def digest_period(self, now: datetime) -> tuple[datetime, datetime]:
        """The latest digest period that has ended by `now`: [start, end)."""
        local = now.astimezone(self.zone())
        if self.digest == "hourly":
            end = local.replace(minute=0, second=0, microsecond=0)
            return (end - timedelta(hours=1)), end
        end = local.replace(hour=self.digest_hour, minute=0, second=0, microsecond=0)
        if end > local:
            end -= timedelta(days=1)
        return end - timedelta(days=1), end


def _clock(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def channel_key(route: str, channel: str) -> str:
    return channel if route == DEFAULT else f"{route}/{channel}"


def routes_for(facts: AlertFacts, routes: Sequence[Route]) -> list[Route]:
    """The routes that take an alert: matching ones in order (stopping at the first without
    `continue_matching`), else the default route. The ops route never takes story alerts."""
    out: list[Route] = []
    default = None
    for r in routes:
        if r.name == DEFAULT:
            default = r
            continue
        if r.ops or not r.matches(facts):
            continue
        out.append(r)
        if not r.continue_matching:
            break
    if not out and default is not None:
        out.append(default)
    return out


def ops_route(routes: Iterable[Route]) -> Route | None:
    """The route named by alerts.ops_route; without one, health alerts are not sent (newsmon
    status and /healthz still tell)."""
    return next((r for r in routes if r.ops), None)
