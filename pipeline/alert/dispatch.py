"""Alert dispatch: outbox -> notifiers -> delivery log.

Alerting reads only what storage committed. An outbox row is written in the same transaction as
the topic match that caused it, once per (topic, story), so copies of a story never alert again.
Each channel keeps its own delivery log: an alert is done on a channel once a delivery is `sent`
or `permanent_error`. Transient failures are retried with exponential backoff (or the server's
Retry-After) up to `max_attempts`.

Crash safety: the delivery row is committed right after the notifier returns. A crash in the
milliseconds between the two would re-send that one alert on restart (at-least-once); email
carries a Message-ID derived from the alert id, so mail systems can recognise the repeat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.alert.message import AlertMessage
from pipeline.alert.notifiers import Notifier
from pipeline.errors import PermanentDeliveryError, TransientDeliveryError
from pipeline.models import parse_datetime
from pipeline.store import DueAlert, Store

log = logging.getLogger("newsmon.alert")

RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)


@dataclass
class DispatchSummary:
    sent: int = 0
    transient: int = 0
    permanent: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)


def to_message(due: DueAlert) -> AlertMessage:
    p: dict[str, Any] = due.payload
    return AlertMessage(
        alert_id=due.alert_id,
        topic=due.topic,
        topic_description=p.get("topic_description", ""),
        story_id=due.story_id,
        title=p.get("title") or "(untitled)",
        url=p.get("url", ""),
        sitename=p.get("sitename"),
        published=parse_datetime(p.get("published")),
        score=float(p.get("score", 0.0)),
        evidence=tuple(p.get("evidence", ())),
        outlets=tuple(p.get("outlets", ())),
        created_at=parse_datetime(p.get("created_at")) or datetime.now(UTC),
    )


def retry_delay(attempt: int, retry_after: float | None) -> timedelta:
    delay = min(RETRY_MAX, RETRY_BASE * (2 ** max(0, attempt - 1)))
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay


def dispatch(
    store: Store,
    notifiers: Sequence[Notifier],
    *,
    max_attempts: int,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DispatchSummary:
    """Send every due alert on every channel once; record each attempt."""
    by_channel = {n.channel: n for n in notifiers}
    summary = DispatchSummary()
    for due in store.due_alerts(list(by_channel), now(), max_attempts=max_attempts):
        notifier = by_channel[due.channel]
        msg = to_message(due)
        try:
            notifier.send(msg)
        except TransientDeliveryError as e:
            summary.transient += 1
            when = now()
            store.record_delivery(
                due.alert_id,
                due.channel,
                due.attempt,
                "transient_error",
                now=when,
                error=str(e)[:500],
                next_attempt_at=when + retry_delay(due.attempt, e.retry_after),
            )
            log.warning(
                "alert_delivery_failed alert_id=%s channel=%s attempt=%d kind=transient error=%s",
                due.alert_id, due.channel, due.attempt, e,
            )
            continue
        except PermanentDeliveryError as e:
            summary.permanent += 1
            store.record_delivery(due.alert_id, due.channel, due.attempt, "permanent_error", now=now(), error=str(e)[:500])
            log.error(
                "alert_delivery_failed alert_id=%s channel=%s attempt=%d kind=permanent error=%s",
                due.alert_id, due.channel, due.attempt, e,
            )
            continue
        store.record_delivery(due.alert_id, due.channel, due.attempt, "sent", now=now())
        summary.sent += 1
        summary.by_channel[due.channel] = summary.by_channel.get(due.channel, 0) + 1
        log.info("alert_sent alert_id=%s channel=%s topic=%s story_id=%s", due.alert_id, due.channel, due.topic, due.story_id)
    return summary
