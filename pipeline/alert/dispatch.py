"""Alert dispatch: outbox -> notifiers -> delivery log.

Alerting reads only what storage committed. An outbox row is written in the same transaction as
the topic match that caused it, once per (topic, story), so copies of a story never alert again.
Each channel keeps its own delivery log: an alert is done on a channel once a delivery is `sent`
or `permanent_error`. Transient failures are retried with exponential backoff (or the server's
Retry-After) up to `max_attempts`.

Crash safety: every attempt is claimed before the channel is called (a 'sending' row, committed)
and its outcome is recorded after. A claim without an outcome means the process died while the
alert was in flight: it may or may not have arrived. Such an alert is "in doubt", and:

* a channel that can read itself back (`Confirming`: the Slack Web API, through the alert id in
  message metadata) is asked; if the alert is there it is recorded as sent, with its receipt,
  and not posted again; if it is not there it is sent. Nothing is lost, nothing doubled.
* any other channel follows its `on_in_doubt` policy: `resend` (default: at-least-once; email
  repeats carry the same Message-ID, so mail stores that de-duplicate by it show one message)
  or `skip` (at-most-once: recorded as 'skipped_in_doubt' and logged, never repeated).

Claiming costs one more store commit per delivery; alerts are few, so that is cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.alert.message import AlertMessage
from pipeline.alert.notifiers import Confirming, Notifier
from pipeline.errors import PermanentDeliveryError, TransientDeliveryError
from pipeline.models import parse_datetime
from pipeline.store import DueAlert, Store

log = logging.getLogger("newsmon.alert")

RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)


IN_DOUBT_POLICIES = ("resend", "skip")


@dataclass
class DispatchSummary:
    sent: int = 0
    transient: int = 0
    permanent: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    confirmed: int = 0  # in doubt, found in the channel: recorded as sent without posting again
    resent_in_doubt: int = 0  # in doubt, could not be checked, sent again (policy resend)
    skipped_in_doubt: int = 0  # in doubt, could not be checked, not sent again (policy skip)
    observe: Callable[[str, str], None] | None = field(default=None, repr=False, compare=False)

    def count(self, channel: str, outcome: str) -> None:
        """Count one recorded outcome here and in the observer (live metrics)."""
        if outcome == "sent":
            self.sent += 1
            self.by_channel[channel] = self.by_channel.get(channel, 0) + 1
        elif outcome == "transient_error":
            self.transient += 1
        elif outcome == "permanent_error":
            self.permanent += 1
        else:
            setattr(self, outcome, getattr(self, outcome) + 1)
        if self.observe is not None:
            self.observe(channel, outcome)


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


def with_story_outlets(msg: AlertMessage, store: Store) -> AlertMessage:
    """The message with every outlet that carries its story now, in order of first sight.

    The outbox row names only the outlet of the article that raised the alert, so the story-A
    alert said "Outlets (1)" while the same run's story summary listed 3 (its syndicated copies,
    folded in the same batch). Read at send time, the list is what the store knows."""
    _, rows = store.query(
        "SELECT coalesce(sitename, feed_id) AS outlet FROM story_members WHERE story_id = ? "
        "GROUP BY 1 ORDER BY min(seen_at), 1",
        [msg.story_id],
    )
    outlets = list(dict.fromkeys([*msg.outlets, *(r[0] for r in rows if r[0])]))
    return msg if outlets == list(msg.outlets) else replace(msg, outlets=tuple(outlets))


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
    on_in_doubt: dict[str, str] | None = None,
    observe: Callable[[str, str], None] | None = None,
) -> DispatchSummary:
    """Send every due alert on every channel once; record each attempt (claim, then outcome).

    `on_in_doubt` maps a channel name to "resend" (default) or "skip" for channels that cannot
    confirm a delivery that was in flight when the process died. `observe(channel, outcome)` is
    called as each outcome is recorded (metrics), with outcome one of sent, transient_error,
    permanent_error, confirmed, resent_in_doubt, skipped_in_doubt.
    """
    by_channel = {n.channel: n for n in notifiers}
    policies = on_in_doubt or {}
    summary = DispatchSummary(observe=observe)
    for due in store.due_alerts(list(by_channel), now(), max_attempts=max_attempts):
        notifier = by_channel[due.channel]
        msg = with_story_outlets(to_message(due), store)
        if due.claimed_at is not None and not _settle_in_doubt(store, notifier, due, msg, policies, now, summary):
            continue
        store.record_delivery(due.alert_id, due.channel, due.attempt, "sending", now=now())
        try:
            receipt = notifier.send(msg)
        except TransientDeliveryError as e:
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
            summary.count(due.channel, "transient_error")
            log.warning(
                "alert_delivery_failed alert_id=%s channel=%s attempt=%d kind=transient error=%s",
                due.alert_id, due.channel, due.attempt, e,
            )
            continue
        except PermanentDeliveryError as e:
            store.record_delivery(due.alert_id, due.channel, due.attempt, "permanent_error", now=now(), error=str(e)[:500])
            summary.count(due.channel, "permanent_error")
            log.error(
                "alert_delivery_failed alert_id=%s channel=%s attempt=%d kind=permanent error=%s",
                due.alert_id, due.channel, due.attempt, e,
            )
            continue
        store.record_delivery(due.alert_id, due.channel, due.attempt, "sent", now=now(), receipt=receipt)
        summary.count(due.channel, "sent")
        log.info("alert_sent alert_id=%s channel=%s topic=%s story_id=%s", due.alert_id, due.channel, due.topic, due.story_id)
    return summary


def _settle_in_doubt(
    store: Store,
    notifier: Notifier,
    due: DueAlert,
    msg: AlertMessage,
    policies: dict[str, str],
    now: Callable[[], datetime],
    summary: DispatchSummary,
) -> bool:
    """Decide an in-doubt delivery; True when the alert should be sent (again) now."""
    assert due.claimed_at is not None
    claimed = due.attempt - 1  # the attempt in flight; its outcome is recorded against it
    if isinstance(notifier, Confirming):
        try:
            receipt = notifier.confirm(msg, due.claimed_at)
        except TransientDeliveryError as e:
            # Cannot tell now: neither resend (could double) nor give up (could lose); ask again
            # at the next run.
            log.warning(
                "alert_in_doubt_unchecked alert_id=%s channel=%s error=%s", due.alert_id, due.channel, e
            )
            return False
        except PermanentDeliveryError as e:
            log.error(
                "alert_in_doubt_unchecked alert_id=%s channel=%s error=%s (sending again)",
                due.alert_id, due.channel, e,
            )
            summary.count(due.channel, "resent_in_doubt")
            return True
        if receipt is not None:
            store.record_delivery(
                due.alert_id, due.channel, claimed, "sent", now=now(),
                error="confirmed in the channel after a restart", receipt=receipt,
            )
            summary.count(due.channel, "confirmed")
            summary.by_channel[due.channel] = summary.by_channel.get(due.channel, 0) + 1
            log.info(
                "alert_in_doubt_confirmed alert_id=%s channel=%s: it had arrived; not sending again",
                due.alert_id, due.channel,
            )
            return False
        log.info("alert_in_doubt_absent alert_id=%s channel=%s: it had not arrived; sending", due.alert_id, due.channel)
        return True
    if policies.get(due.channel, "resend") == "skip":
        store.record_delivery(
            due.alert_id, due.channel, claimed, "skipped_in_doubt", now=now(),
            error=f"in flight when the process stopped at {due.claimed_at.isoformat()}; on_in_doubt=skip",
        )
        summary.count(due.channel, "skipped_in_doubt")
        log.warning(
            "alert_in_doubt_skipped alert_id=%s channel=%s: may not have arrived; on_in_doubt=skip",
            due.alert_id, due.channel,
        )
        return False
    summary.count(due.channel, "resent_in_doubt")
    log.warning(
        "alert_in_doubt_resent alert_id=%s channel=%s: may have arrived already; on_in_doubt=resend",
        due.alert_id, due.channel,
    )
    return True
