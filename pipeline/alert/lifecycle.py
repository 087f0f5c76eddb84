"""The alert lifecycle: an alert is one message per (route, topic, story), then updates.

One `AlertEngine.run()` (the daemon's alert job) does, in order:

1. Queued silence changes are applied (`newsmon silence add|expire` while the daemon runs), and
   the notification rows `newsmon alerts test|replay` queued meanwhile are recorded.
2. First alerts. Each outbox row is routed (routes.py) to one or more route channels. On each it
   is, in this order of precedence: recorded `silenced` when an active silence matches; held while
   it is younger than the group wait (copies arriving in the same minutes fold first, and the
   alert shows them); held during the route's quiet hours (unless it scores the override); left to
   the digest on a digest route; else sent. When more first alerts are due on a channel than
   `backlog_digest_after`, they go out as one digest message instead of a flood (`folded`).
3. Thread updates, per alerted story, on channels that can thread: later copies become one reply
   under the first Slack message (`thread_ts`) at most every `reply_interval_seconds`, and the
   parent's outlet count is updated (`chat.update`); when `spread_outlets` outlets first carried
   the story within `spread_minutes`, that reply is also broadcast to the channel, once per story
   (`reply_broadcast`). Email gets at most one follow-up per story per `email_followup_minutes`,
   in the alert's thread (`In-Reply-To`/`References`). A Slack webhook cannot thread: it gets the
   first alert only (logged once at start).
4. Digests of digest routes, at the end of each period: the top stories per topic with outlet
   counts; an empty period sends nothing (`skipped_empty`).
5. Pipeline-health alerts to the ops route (health.py): each fires once and resolves once.

Every message is claimed in the notification log before the channel is called and its outcome
appended after. A claim without an outcome (the process died, or the call hung and timed out) is
settled before anything else on that thread: Slack is asked (message metadata carries the
notification's id) and the message is recorded as sent if it is there, sent if not; email is sent
again with the same Message-ID. Replies of a thread go strictly in order: reply n+1 is not made
before reply n is recorded sent. Slack posts and updates pass a per-channel token bucket
(`slack_posts_per_second`), and a 429's Retry-After holds the channel, across restarts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.alert import nflog
from pipeline.alert.dispatch import retry_delay, to_message
from pipeline.alert.message import AlertMessage, _one_line, _truncate, render_slack
from pipeline.alert.notifiers import Notifier
from pipeline.alert.notifiers.email import EmailNotifier, message_id
from pipeline.alert.notifiers.slack import METADATA_EVENT, SlackApiNotifier
from pipeline.alert.ratelimit import ChannelLimiter
from pipeline.alert.routes import AlertFacts, Route, routes_for
from pipeline.alert.silences import Silence, apply_pending, first_match, load_silences
from pipeline.config import AlertTimingConfig
from pipeline.errors import PermanentDeliveryError, TransientDeliveryError
from pipeline.store import DueAlert, Store

log = logging.getLogger("newsmon.alert")

MESSAGE_EVENT = "newsmon_message"  # metadata event of replies, digests, health and test messages
MAX_AGE = timedelta(days=2)
HEALTH_EVERY = timedelta(minutes=5)  # pipeline-health checks at most this often


@dataclass
class LifecycleSummary:
    sent: int = 0  # first alerts delivered
    silenced: int = 0
    held_group_wait: int = 0
    held_quiet: int = 0
    folded: int = 0  # first alerts that went out inside a digest
    replies: int = 0  # thread replies and email follow-ups
    updates: int = 0  # chat.update of a parent
    digests: int = 0
    health: int = 0
    transient: int = 0
    permanent: int = 0
    confirmed: int = 0  # in doubt, found in the channel: recorded, not sent again
    resent_in_doubt: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1, channel: str | None = None) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)
            if channel is not None and name == "sent":
                self.by_channel[channel] = self.by_channel.get(channel, 0) + n


class AlertEngine:
    def __init__(
        self,
        store: Store,
        routes: Sequence[Route],
        timing: AlertTimingConfig,
        *,
        max_attempts: int = 8,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        limiter: ChannelLimiter | None = None,
        on_in_doubt: dict[str, str] | None = None,
        observe: Callable[[str, str], None] | None = None,
        health: Callable[[datetime], list[tuple[str, bool, str]]] | None = None,
    ) -> None:
        self.store = store
        self.routes = list(routes)
        self.timing = timing
        self.max_attempts = max_attempts
        self.now = now
        self.limiter = limiter or ChannelLimiter(timing.slack_posts_per_second)
        self.on_in_doubt = on_in_doubt or {}
        self.observe = observe
        self.health = health
        self.by_key: dict[str, tuple[Route, Notifier]] = {k: (r, n) for r in self.routes for k, n in r.keys.items()}
        self._silences: list[Silence] = []
        self._health_at: datetime | None = None
        self._snap: dict[str, list[dict[str, Any]]] | None = None
        # Holds set by a 429 before a restart still bind.
        wall = self.now()
        for channel, until in nflog.channel_holds(store, wall).items():
            self.limiter.hold(channel, (until - wall).total_seconds())
        for key, (_, n) in self.by_key.items():
            if n.channel == "slack" and not isinstance(n, SlackApiNotifier):
                log.info("slack_webhook_no_threads channel=%s: an incoming webhook cannot thread or edit; "
                         "first alerts only (set alerts.slack.channel and a bot token for updates)", key)

    # -- the run ---------------------------------------------------------------------------------

    def run(self, *, flush: bool = False) -> LifecycleSummary:
        """One pass over everything due. `flush` ignores the group wait (`run --once`: the cycle's
        batch has folded every copy it will see)."""
        summary = LifecycleSummary()
        apply_pending(self.store)
        nflog.apply_pending(self.store)  # rows of `alerts test|replay` queued while we hold the store
        now = self.now()
        self._silences = load_silences(self.store)
        due = nflog.due_first(self.store, list(self.by_key), now, max_attempts=self.max_attempts, max_age=MAX_AGE)
        states = nflog.story_states(self.store, {d.story_id for d in due}, now)
        per_channel: dict[str, list[tuple[nflog.DueFirst, AlertFacts]]] = {k: [] for k in self.by_key}
        decided: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
        for d in due:
            route, _ = self.by_key[d.channel]
            facts = self._facts(d, states.get(d.story_id))
            if route not in routes_for(facts, self.routes):
                continue
            if d.claimed_at is None:
                silence = first_match(self._silences, facts, route.name, now)
                if silence is not None:
                    decided.append(self._silenced(d, route, silence, now))
                    summary.add("silenced")
                    continue
                if not flush and d.created_at > now - timedelta(seconds=self.timing.group_wait_seconds):
                    summary.add("held_group_wait")
                    continue
                if route.digest is None and route.is_quiet(now, facts.score):
                    summary.add("held_quiet")
                    continue
                if route.digest is not None:
                    continue  # the route's digest takes it
            per_channel[d.channel].append((d, facts))
        for nf_rows, deliveries in decided:
            nflog.append(self.store, nf_rows, deliveries)
        keys = list(self.by_key)
        # One read of the notification log for every channel, instead of several per channel:
        # each channel's thread is the only writer of its rows until the channels are done, so
        # the snapshot stays true for what a thread reads (first alerts it sends in this run are
        # threaded from the next run on). Digests and health, after the channels, read afresh.
        self._snap = self._snapshot(now)
        if len(keys) <= 1:
            for k in keys:
                self._channel(k, per_channel[k], states, summary)
        else:
            # One thread per channel: each channel's rate limit is its own, so a slow or held
            # channel does not delay the others.
            with ThreadPoolExecutor(max_workers=min(32, len(keys)), thread_name_prefix="alert") as pool:
                futures = [pool.submit(self._channel, k, per_channel[k], states, summary) for k in keys]
                try:
                    for f in futures:
                        f.result()
                finally:
                    self._snap = None
        self._snap = None
        for route in self.routes:
            if route.digest is not None:
                self._digest(route, summary)
        if self.health is not None:
            self._health(summary)
        return summary

    def pending(self) -> dict[str, int]:
        """Work still to do: first alerts due on some channel (not silenced, not done) and alerted
        stories with copies no message has told yet, on channels that thread."""
        now = self.now()
        due = nflog.due_first(self.store, list(self.by_key), now, max_attempts=self.max_attempts, max_age=MAX_AGE)
        states = nflog.story_states(self.store, {d.story_id for d in due}, now)
        first = sum(1 for d in due if self.by_key[d.channel][0] in routes_for(self._facts(d, states.get(d.story_id)), self.routes)
                    and self.by_key[d.channel][0].digest is None)
        threading_keys = [k for k, (_, n) in self.by_key.items() if isinstance(n, SlackApiNotifier | EmailNotifier)]
        _, rows = self.store.query(
            """WITH told AS (
                   SELECT channel, alert_id, any_value(story_id) AS story_id, max(copies) AS copies
                   FROM alert_notifications WHERE kind IN ('first', 'reply') AND status = 'sent'
                     AND channel IN (SELECT unnest(?::VARCHAR[])) AND noted_at >= ? GROUP BY ALL),
               cur AS (SELECT story_id, count(*) AS n FROM story_members WHERE seen_at <= ? GROUP BY 1)
               SELECT count(*) FROM told JOIN cur USING (story_id) WHERE told.copies < cur.n""",
            [threading_keys, now - timedelta(hours=self.timing.update_window_hours), now],
        )
        return {"first": first, "untold": int(rows[0][0])}

    def _snapshot(self, now: datetime) -> dict[str, list[dict[str, Any]]]:
        since = now - max(MAX_AGE, timedelta(hours=self.timing.update_window_hours))
        out: dict[str, list[dict[str, Any]]] = {k: [] for k in self.by_key}
        for r in nflog.latest(self.store, kinds=("first", "reply", "update", "digest", "health"), since=since):
            out.setdefault(r["channel"], []).append(r)
        return out

    def _latest(self, key: str, kinds: Sequence[str], since: datetime,
                statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """nflog.latest for one channel: from the run's snapshot while the channels run."""
        snap = self._snap
        if snap is None:
            return nflog.latest(self.store, channel=key, kinds=kinds, since=since, statuses=statuses)
        return [r for r in snap.get(key, ()) if r["kind"] in kinds and r["noted_at"] >= since
                and (statuses is None or r["status"] in statuses)]

    def _facts(self, d: nflog.DueFirst, st: nflog.StoryState | None) -> AlertFacts:
        outlets = set(st.outlets) if st else set()
        outlets |= {o for o in d.payload.get("outlets", ()) if o}
        return AlertFacts(d.topic, d.story_id, float(d.payload.get("score", 0.0)), frozenset(outlets), d.feed_id,
                          frozenset(d.feed_tags))

    def _silenced(self, d: nflog.DueFirst, route: Route, s: Silence, now: datetime):
        detail = f"{s.silence_id}: {s.describe()} until {s.ends_at:%Y-%m-%d %H:%M} by {s.author}"
        return (
            [nflog.row(notification_id=nflog.nid(d.channel, "first", d.alert_id), route=route.name, channel=d.channel,
                       kind="first", alert_id=d.alert_id, topic=d.topic, story_id=d.story_id, seq=0, attempt=d.attempt,
                       status="silenced", detail=detail, noted_at=now)],
            [nflog.delivery(d.alert_id, d.channel, d.attempt, "silenced", now, error=detail)],
        )

    # -- one channel: first alerts, then thread updates --------------------------------------------

    def _channel(self, key: str, due: list[tuple[nflog.DueFirst, AlertFacts]], states: dict[str, nflog.StoryState],
                 summary: LifecycleSummary) -> None:
        route, notifier = self.by_key[key]
        try:
            self._settle_messages(key, summary)
            busy = self._pending_digest_alerts(key)
            due = [x for x in due if x[0].alert_id not in busy]
            fresh = [x for x in due if x[0].claimed_at is None and x[0].attempt == 1]
            if len(fresh) > self.timing.backlog_digest_after:
                self._backlog_digest(route, key, [d for d, _ in fresh], states, summary)
                due = [x for x in due if x not in fresh]
            for d, _ in due:
                if not self._first(route, key, notifier, d, states.get(d.story_id), summary):
                    return  # the channel is held (429): the rest waits for the next run
            if isinstance(notifier, SlackApiNotifier | EmailNotifier):
                self._threads(route, key, notifier, summary)
        except _ChannelHeld:
            return

    def _slack_id(self, notifier: Notifier) -> str | None:
        """The channel's name in the limiter and in alert_channel_holds (None: not Slack). Both
        are the same in every process, so a 429's hold binds after a restart."""
        if isinstance(notifier, SlackApiNotifier):
            return f"slack:{notifier.channel_id}"
        if notifier.channel == "slack":
            key = getattr(notifier, "limit_key", None)
            return key if isinstance(key, str) else f"hook:{type(notifier).__name__}"
        return None

    @contextlib.contextmanager
    def _gate(self, notifier: Notifier, claim: Callable[[], None] | None = None) -> Iterator[None]:
        """Around one Slack call: wait for the channel's token (raise _ChannelHeld while a
        Retry-After holds it), and start the next interval when the call has been answered.

        `claim` (the notification log's claim, a commit) runs before the wait for the token, so
        its commit overlaps the interval instead of adding to it: a channel at one post per
        second then spends its second waiting, not committing."""
        sid = self._slack_id(notifier)
        if sid is None:
            if claim is not None:
                claim()
            yield
            return
        if self.limiter.held(sid) > 0:
            raise _ChannelHeld(sid)
        if claim is not None:
            claim()
        self.limiter.acquire(sid)
        try:
            yield
        finally:
            self.limiter.settle(sid)

    def _transient(self, notifier: Notifier, e: TransientDeliveryError, summary: LifecycleSummary) -> None:
        summary.add("transient")
        if e.retry_after is not None and notifier.channel == "slack":
            sid = self._slack_id(notifier) or ""
            self.limiter.hold(sid, e.retry_after)
            now = self.now()
            nflog.save_hold(self.store, sid, now + timedelta(seconds=e.retry_after), str(e)[:200], now)

    def _observe(self, channel: str, outcome: str) -> None:
        if self.observe is not None:
            self.observe(channel, outcome)

    # -- first alerts -----------------------------------------------------------------------------

    def _first(self, route: Route, key: str, notifier: Notifier, d: nflog.DueFirst, st: nflog.StoryState | None,
               summary: LifecycleSummary) -> bool:
        """Send (or settle) one first alert; False when the channel got held."""
        msg = to_message(DueAlert(d.alert_id, key, d.attempt, d.topic, d.story_id, d.payload, d.claimed_at))
        st = st or nflog.StoryState()
        outlets = list(dict.fromkeys([*msg.outlets, *st.outlets_in_order()]))
        msg = replace(msg, outlets=tuple(outlets))
        since = d.claimed_at or d.last_claim_at
        if since is not None and isinstance(notifier, SlackApiNotifier):
            # In doubt (a crash) or after a failed attempt (a timeout may have posted it): ask.
            try:
                ts = notifier.find("alert_id", msg.alert_id, since)
            except TransientDeliveryError as e:
                log.warning("alert_in_doubt_unchecked alert_id=%s channel=%s error=%s", d.alert_id, key, e)
                self._transient(notifier, e, summary)
                return self.limiter.held(self._slack_id(notifier) or "") <= 0
            if ts is not None:
                self._first_sent(route, key, d, msg, st, ts, summary, confirmed=True)
                return True
        elif d.claimed_at is not None:
            if self.on_in_doubt.get(notifier.channel, "resend") == "skip":
                now = self.now()
                why = f"in flight when the process stopped at {d.claimed_at.isoformat()}; on_in_doubt=skip"
                nflog.append(self.store, [], [nflog.delivery(d.alert_id, key, d.attempt - 1, "skipped_in_doubt", now, error=why)])
                log.warning("alert_in_doubt_skipped alert_id=%s channel=%s", d.alert_id, key)
                return True
            summary.add("resent_in_doubt")
            log.warning("alert_in_doubt_resent alert_id=%s channel=%s", d.alert_id, key)
        attempt = d.attempt
        try:
            def claim() -> None:
                self.store.record_delivery(d.alert_id, key, attempt, "sending", now=self.now())

            with self._gate(notifier, claim):
                if isinstance(notifier, SlackApiNotifier):
                    receipt = notifier.post(with_mute(render_slack(msg), msg), alert_metadata(msg, route.name))
                elif isinstance(notifier, EmailNotifier):
                    notifier.send(msg)
                    receipt = message_id(msg.alert_id)
                else:
                    receipt = notifier.send(msg)
        except _ChannelHeld:
            return False
        except TransientDeliveryError as e:
            when = self.now()
            self.store.record_delivery(d.alert_id, key, attempt, "transient_error", now=when, error=str(e)[:500],
                                       next_attempt_at=when + retry_delay(attempt, e.retry_after))
            self._observe(key, "transient_error")
            log.warning("alert_delivery_failed alert_id=%s channel=%s attempt=%d kind=transient error=%s",
                        d.alert_id, key, attempt, e)
            self._transient(notifier, e, summary)
            return self.limiter.held(self._slack_id(notifier) or "") <= 0
        except PermanentDeliveryError as e:
            self.store.record_delivery(d.alert_id, key, attempt, "permanent_error", now=self.now(), error=str(e)[:500])
            self._observe(key, "permanent_error")
            summary.add("permanent")
            log.error("alert_delivery_failed alert_id=%s channel=%s attempt=%d kind=permanent error=%s",
                      d.alert_id, key, attempt, e)
            return True
        self._first_sent(route, key, replace(d, attempt=attempt + 1), msg, st, receipt, summary)
        return True

    def _first_sent(self, route: Route, key: str, d: nflog.DueFirst, msg: AlertMessage, st: nflog.StoryState,
                    receipt: str | None, summary: LifecycleSummary, *, confirmed: bool = False) -> None:
        now = self.now()
        attempt = d.attempt - 1  # the attempt that was claimed
        why = "confirmed in the channel after a restart" if confirmed else None
        nflog.append(
            self.store,
            [nflog.row(notification_id=nflog.nid(key, "first", d.alert_id), route=route.name, channel=key, kind="first",
                       alert_id=d.alert_id, topic=d.topic, story_id=d.story_id, seq=0, attempt=attempt, status="sent",
                       outlets=len(msg.outlets), copies=max(1, st.copies), upto=st.upto, receipt=receipt,
                       detail={"outlets": list(msg.outlets), "copies": max(1, st.copies), "title": msg.title},
                       noted_at=now)],
            [nflog.delivery(d.alert_id, key, attempt, "sent", now, receipt=receipt, error=why)],
        )
        if confirmed:
            summary.add("confirmed")
            self._observe(key, "confirmed")
            log.info("alert_in_doubt_confirmed alert_id=%s channel=%s: it had arrived; not sending again", d.alert_id, key)
        else:
            self._observe(key, "sent")
            log.info("alert_sent alert_id=%s channel=%s topic=%s story_id=%s outlets=%d", d.alert_id, key, d.topic,
                     d.story_id, len(msg.outlets))
        summary.add("sent", channel=key)

    # -- messages other than first alerts: replies, digests, health ---------------------------------

    def _deliver(self, key: str, m: dict[str, Any], summary: LifecycleSummary) -> str:
        """Deliver one claimed-or-to-claim message (a dict of notification columns + `content`);
        settles a previous claim first. Returns the outcome recorded."""
        route, notifier = self.by_key[key]
        content = m["content"]
        previous = m.get("claimed_at")
        if previous is not None and isinstance(notifier, SlackApiNotifier):
            try:
                ts = notifier.find("notification_id", m["notification_id"], previous, thread_ts=m.get("thread") or None,
                                   event_type=MESSAGE_EVENT)
            except TransientDeliveryError as e:
                self._transient(notifier, e, summary)
                if self.limiter.held(self._slack_id(notifier) or "") > 0:
                    raise _ChannelHeld(key) from None
                return "unchecked"
            if ts is not None:
                self._outcome(m, "sent", receipt=ts, detail_note="confirmed in the channel")
                summary.add("confirmed")
                return "sent"
        elif previous is not None and m.get("status") == "sending":
            summary.add("resent_in_doubt")
        attempt = int(m.get("attempt") or 0) + 1
        try:
            def claim() -> None:
                m["attempt"] = attempt
                nflog.append(self.store, [nflog.row(**{**m, "status": "sending", "noted_at": self.now(), "detail": content})])

            with self._gate(notifier, claim):
                receipt = self._send_message(route, notifier, m)
        except TransientDeliveryError as e:
            when = self.now()
            self._outcome(m, "transient_error", detail_note=str(e)[:300],
                          next_attempt_at=when + retry_delay(attempt, e.retry_after))
            log.warning("alert_message_failed kind=%s notification_id=%s channel=%s attempt=%d error=%s",
                        m["kind"], m["notification_id"], key, attempt, e)
            self._transient(notifier, e, summary)
            if self.limiter.held(self._slack_id(notifier) or "") > 0:
                raise _ChannelHeld(key) from None
            return "transient_error"
        except PermanentDeliveryError as e:
            self._outcome(m, "permanent_error", detail_note=str(e)[:300])
            summary.add("permanent")
            log.error("alert_message_failed kind=%s notification_id=%s channel=%s error=%s (not retried)",
                      m["kind"], m["notification_id"], key, e)
            return "permanent_error"
        self._outcome(m, "sent", receipt=receipt)
        return "sent"

    def _outcome(self, m: dict[str, Any], status: str, *, receipt: str | None = None, detail_note: str | None = None,
                 next_attempt_at: datetime | None = None) -> None:
        now = self.now()
        content = dict(m["content"])
        if detail_note:
            content["note"] = detail_note
        rows = [nflog.row(**{**m, "status": status, "receipt": receipt, "noted_at": now, "detail": content,
                             "next_attempt_at": next_attempt_at})]
        deliveries = []
        if status in ("sent", "permanent_error") and m["kind"] == "digest":
            # The alerts it carries are done on this channel, in the same transaction.
            for aid in content.get("alerts", ()):
                deliveries.append(nflog.delivery(aid, m["channel"], 0, "folded" if status == "sent" else status, now,
                                                 receipt=m["notification_id"], error=detail_note))
        nflog.append(self.store, rows, deliveries)

    def _send_message(self, route: Route, notifier: Notifier, m: dict[str, Any]) -> str | None:
        return send_message(route, notifier, m, self.now())

    def _pending_digest_alerts(self, key: str) -> set[str]:
        """Alerts inside a digest of this channel that is not done yet: nothing else may carry them."""
        out: set[str] = set()
        for m in self._latest(key, ("digest",), self.now() - MAX_AGE,
                              statuses=("sending", "transient_error")):
            out.update(m["content"].get("alerts", ()))
        return out

    def _settle_messages(self, key: str, summary: LifecycleSummary) -> None:
        """Digests and health messages of this channel left in doubt or failed for now."""
        now = self.now()
        for m in self._latest(key, ("digest", "health"), now - MAX_AGE, statuses=("queued", "sending", "transient_error")):
            if m["status"] == "transient_error" and m["next_attempt_at"] and m["next_attempt_at"] > now:
                continue
            if int(m.get("attempt") or 0) >= self.max_attempts and m["status"] != "sending":
                continue
            outcome = self._deliver(key, m, summary)
            if outcome == "sent":
                summary.add("digests" if m["kind"] == "digest" else "health")

    # -- thread updates ---------------------------------------------------------------------------

    def _threads(self, route: Route, key: str, notifier: Notifier, summary: LifecycleSummary) -> None:
        now = self.now()
        t = self.timing
        window = now - timedelta(hours=t.update_window_hours)
        firsts = [f for f in self._latest(key, ("first",), window, statuses=("sent",))
                  if f["receipt"]]
        if not firsts:
            return
        replies: dict[str, list[dict[str, Any]]] = {}
        for r in self._latest(key, ("reply",), window):
            replies.setdefault(r["alert_id"], []).append(r)
        updates: dict[str, int] = {}
        for u in self._latest(key, ("update",), window, statuses=("sent",)):
            updates[u["alert_id"]] = max(updates.get(u["alert_id"], 0), int(u["outlets"] or 0))
        states = nflog.story_states(self.store, {f["story_id"] for f in firsts}, now)
        is_slack = isinstance(notifier, SlackApiNotifier)
        interval = timedelta(seconds=t.reply_interval_seconds if is_slack else t.email_followup_minutes * 60)
        payloads: dict[str, dict[str, Any]] = {}
        for f in firsts:
            aid = f["alert_id"]
            facts = AlertFacts(f["topic"], f["story_id"], 0.0, frozenset(states[f["story_id"]].outlets))
            if first_match(self._silences, facts, route.name, now) is not None:
                continue
            rs = sorted(replies.get(aid, []), key=lambda r: int(r["seq"] or 0))
            last = rs[-1] if rs else None
            if last is not None and last["status"] != "sent":
                if last["status"] == "permanent_error":
                    continue
                if last["status"] == "transient_error" and (
                    int(last["attempt"] or 0) >= self.max_attempts
                    or (last["next_attempt_at"] and last["next_attempt_at"] > now)
                ):
                    continue
                if self._deliver(key, last, summary) == "sent":
                    summary.add("replies")
                    last = {**last, "status": "sent", "noted_at": self.now()}
                else:
                    continue
            else:
                told = last if last is not None else f
                st = states[f["story_id"]]
                told_outlets = set(told["content"].get("outlets", ()))
                told_copies = int(told["copies"] or 0)
                new_outlets = [o for o in st.outlets_in_order() if o not in told_outlets]
                if st.copies > told_copies and now - (told["claimed_at"] or told["noted_at"]) >= interval:
                    seq = int(last["seq"]) + 1 if last else 1
                    recent = [o for o, first in st.outlets.items() if first >= now - timedelta(minutes=t.spread_minutes)]
                    broadcast = is_slack and len(recent) >= t.spread_outlets and not any(r.get("broadcast") for r in rs)
                    m = self._reply(route, key, f, seq, st, new_outlets, st.copies - told_copies, broadcast, is_slack)
                    if self._deliver(key, m, summary) != "sent":
                        continue
                    summary.add("replies")
                    last = {**m, "status": "sent"}
                elif not is_slack or int(told["outlets"] or 0) <= updates.get(aid, int(f["outlets"] or 0)):
                    continue
            if is_slack and last is not None and int(last["outlets"] or 0) > updates.get(aid, int(f["outlets"] or 0)):
                if aid not in payloads:
                    payloads.update(self._payloads([aid]))
                self._update(key, notifier, f, last, payloads.get(aid), summary)  # type: ignore[arg-type]
                updates[aid] = int(last["outlets"] or 0)

    def _reply(self, route: Route, key: str, f: dict[str, Any], seq: int, st: nflog.StoryState, new_outlets: list[str],
               new_copies: int, broadcast: bool, is_slack: bool) -> dict[str, Any]:
        outlets = st.outlets_in_order()
        shown = ", ".join(new_outlets[:10]) + (f" +{len(new_outlets) - 10} more" if len(new_outlets) > 10 else "")
        if new_outlets:
            text = (f"+{len(new_outlets)} outlet{'s' if len(new_outlets) != 1 else ''}: {shown} "
                    f"({len(outlets)} outlets, {st.copies} copies in all)")
        else:
            text = f"+{new_copies} cop{'ies' if new_copies != 1 else 'y'} from outlets already listed ({len(outlets)} outlets, {st.copies} copies in all)"
        if broadcast:
            text = f"Spreading fast: {text}"
        content: dict[str, Any] = {"text": text, "outlets": outlets, "new": new_outlets}
        if not is_slack:
            title = (f.get("content") or {}).get("title") or f["topic"]
            content["subject"] = _truncate(f"Re: [newsmon] {_one_line(f['topic'])}: {_one_line(title)}", 150)
            content["text"] = f"Update on alert {f['alert_id']} (story {f['story_id']}):\n\n{text}"
            content["references"] = [f["receipt"]]
        return nflog.row(notification_id=nflog.nid(key, "reply", f["alert_id"], seq), route=route.name, channel=key,
                         kind="reply", alert_id=f["alert_id"], topic=f["topic"], story_id=f["story_id"], seq=seq,
                         attempt=0, outlets=len(outlets), copies=st.copies, upto=st.upto, thread=f["receipt"],
                         broadcast=broadcast) | {"content": content, "claimed_at": None}

    def _payloads(self, alert_ids: list[str]) -> dict[str, dict[str, Any]]:
        _, rows = self.store.query(
            "SELECT alert_id, topic, story_id, payload FROM alert_outbox WHERE alert_id IN (SELECT unnest(?::VARCHAR[]))",
            [alert_ids],
        )
        return {r[0]: {"topic": r[1], "story_id": r[2], "payload": json.loads(r[3])} for r in rows}

    def _update(self, key: str, notifier: SlackApiNotifier, f: dict[str, Any], told: dict[str, Any],
                p: dict[str, Any] | None, summary: LifecycleSummary) -> None:
        """Edit the parent so it shows the outlets told so far (idempotent: no claim needed)."""
        if p is None:
            return
        outlets = tuple((told.get("content") or {}).get("outlets") or ())
        msg = replace(to_message(DueAlert(f["alert_id"], key, 1, p["topic"], p["story_id"], p["payload"])), outlets=outlets)
        payload = with_mute(render_slack(msg), msg, copies=int(told["copies"] or 0))
        try:
            with self._gate(notifier):
                notifier.update(f["receipt"], payload)
        except TransientDeliveryError as e:
            self._transient(notifier, e, summary)
            return
        except PermanentDeliveryError as e:
            log.error("alert_update_failed alert_id=%s channel=%s error=%s", f["alert_id"], key, e)
            return
        nflog.append(self.store, [nflog.row(
            notification_id=nflog.nid(key, "update", f["alert_id"], len(outlets)), route=f["route"], channel=key,
            kind="update", alert_id=f["alert_id"], topic=f["topic"], story_id=f["story_id"], seq=told.get("seq"),
            attempt=1, status="sent", outlets=len(outlets), copies=told["copies"], receipt=f["receipt"],
            thread=f["receipt"], noted_at=self.now())])
        summary.add("updates")

    # -- digests ----------------------------------------------------------------------------------

    def _digest_content(self, route: Route, title: str, alerts: list[nflog.DueFirst],
                        states: dict[str, nflog.StoryState]) -> dict[str, Any]:
        by_topic: dict[str, list[tuple[int, nflog.DueFirst]]] = {}
        for d in alerts:
            st = states.get(d.story_id) or nflog.StoryState()
            by_topic.setdefault(d.topic, []).append((max(1, len(st.outlets)), d))
        lines = [title]
        for topic in sorted(by_topic):
            items = sorted(by_topic[topic], key=lambda x: (-x[0], x[1].created_at, x[1].alert_id))
            lines.append(f"\n{topic}: {len(items)} stor{'ies' if len(items) != 1 else 'y'}")
            for n, d in items[: self.timing.digest_top]:
                lines.append(f"  • {_one_line(d.payload.get('title') or '(untitled)')[:150]} ({n} outlet{'s' if n != 1 else ''}) "
                             f"{d.payload.get('url', '')}")
            if len(items) > self.timing.digest_top:
                lines.append(f"  … and {len(items) - self.timing.digest_top} more")
        text = "\n".join(lines)
        return {"text": _truncate(text, 3900), "subject": _truncate(title, 150),
                "alerts": sorted(d.alert_id for d in alerts)}

    def _backlog_digest(self, route: Route, key: str, alerts: list[nflog.DueFirst], states: dict[str, nflog.StoryState],
                        summary: LifecycleSummary) -> None:
        ids = sorted(d.alert_id for d in alerts)
        content = self._digest_content(route, f"newsmon: {len(ids)} new stories at once (sent as one digest)", alerts, states)
        m = nflog.row(notification_id=nflog.nid(key, "backlog", *ids), route=route.name, channel=key, kind="digest",
                      seq=0, attempt=0, outlets=len(ids)) | {"content": content, "claimed_at": None}
        log.info("alert_backlog_folded channel=%s alerts=%d", key, len(ids))
        if self._deliver(key, m, summary) == "sent":
            summary.add("digests")
            summary.add("folded", len(ids))

    def _digest(self, route: Route, summary: LifecycleSummary) -> None:
        now = self.now()
        start, end = route.digest_period(now)
        keys = list(route.keys)
        due = [d for d in nflog.due_first(self.store, keys, end, max_attempts=self.max_attempts, max_age=MAX_AGE)
               if d.claimed_at is None]
        states = nflog.story_states(self.store, {d.story_id for d in due}, now)
        mine = [d for d in due if route in routes_for(self._facts(d, states.get(d.story_id)), self.routes)
                and first_match(self._silences, self._facts(d, states.get(d.story_id)), route.name, now) is None]
        for key in keys:
            n_id = nflog.nid(key, "digest", end.isoformat())
            decided = {r["notification_id"] for r in nflog.latest(self.store, channel=key, kinds=("digest",),
                                                                   since=start - MAX_AGE)}
            if n_id in decided:
                continue  # decided (or in flight: _settle_messages finishes it)
            busy = self._pending_digest_alerts(key)
            alerts = [d for d in mine if d.channel == key and d.alert_id not in busy]
            if not alerts:
                nflog.append(self.store, [nflog.row(notification_id=n_id, route=route.name, channel=key, kind="digest",
                                                    seq=0, attempt=0, status="skipped_empty", outlets=0,
                                                    detail=f"nothing between {start.isoformat()} and {end.isoformat()}",
                                                    noted_at=now)])
                continue
            zone = route.zone_name()
            title = (f"newsmon {route.digest} digest ({route.name}): {len(alerts)} stor{'ies' if len(alerts) != 1 else 'y'}, "
                     f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} {zone}")
            content = self._digest_content(route, title, alerts, states)
            m = nflog.row(notification_id=n_id, route=route.name, channel=key, kind="digest", seq=0, attempt=0,
                          outlets=len(alerts)) | {"content": content, "claimed_at": None}
            try:
                if self._deliver(key, m, summary) == "sent":
                    summary.add("digests")
                    summary.add("folded", len(alerts))
            except _ChannelHeld:
                pass

    # -- health -----------------------------------------------------------------------------------

    def _health(self, summary: LifecycleSummary) -> None:
        from pipeline.alert.health import health_transitions
        from pipeline.alert.routes import ops_route

        assert self.health is not None
        ops = ops_route(self.routes)
        if ops is None:
            return  # no ops route: nothing to tell (newsmon status and /healthz still do)
        now = self.now()
        if self._health_at is not None and now - self._health_at < HEALTH_EVERY:
            return  # the checks read the whole feed history: every few minutes is enough
        self._health_at = now
        msgs: list[tuple[str, dict[str, Any]]] = []
        rows: list[dict[str, Any]] = []

        def queue(changes: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
            for check_key, state, detail in changes:
                text = (f":rotating_light: newsmon ops: {detail}" if state == "firing"
                        else f"newsmon ops: resolved: {detail}")
                content = {"text": text, "check": check_key, "state": state,
                           "subject": f"[newsmon ops] {'resolved: ' if state != 'firing' else ''}{detail}"[:150]}
                for key in ops.keys:
                    m = nflog.row(notification_id=nflog.nid(key, "health", check_key, state, now.isoformat()),
                                  route=ops.name, channel=key, kind="health", seq=0, attempt=0, status="queued",
                                  detail=content, noted_at=now)
                    rows.append(m)
                    msgs.append((key, m | {"content": content, "claimed_at": None}))
            return rows

        health_transitions(self.store, self.health(now), now, messages=queue)
        for key, m in msgs:
            try:
                if self._deliver(key, m, summary) == "sent":
                    summary.add("health")
            except _ChannelHeld:
                pass  # queued: the next run sends it (_settle_messages)

def send_message(route: Route, notifier: Notifier, m: dict[str, Any], now: datetime) -> str | None:
    """Send one message that is not a first alert (columns of the notification log + `content`)."""
    c = m["content"]
    if isinstance(notifier, SlackApiNotifier):
        payload: dict[str, Any] = {"text": c["text"]}
        if c.get("blocks"):
            payload["blocks"] = c["blocks"]
        meta = {"event_type": MESSAGE_EVENT,
                "event_payload": {"notification_id": m["notification_id"], "kind": m["kind"], "seq": m.get("seq") or 0,
                                  "alert_id": m.get("alert_id") or "", "outlets": m.get("outlets") or 0,
                                  **({"route": route.name} if route.name != "default" else {})}}
        return notifier.post(payload, meta, thread_ts=m.get("thread") or None, broadcast=bool(m.get("broadcast")))
    if isinstance(notifier, EmailNotifier):
        mid = _msgid(m["notification_id"])
        refs = c.get("references") or ()
        email = notifier.build_other(c.get("subject") or "[newsmon]", c["text"] + "\n", mid, created=now,
                                     in_reply_to=m.get("thread") or None, references=refs,
                                     alert_id=m.get("alert_id") or None)
        notifier.deliver(email, f"{m['kind']} {m['notification_id']}")
        return mid
    if notifier.channel == "slack":  # a webhook: no threads, but digests and health go
        hook_msg = AlertMessage(m["notification_id"], c.get("subject", "newsmon"), "", "", c["text"], "", None,
                                None, 0.0, (), (), now)
        notifier.send(hook_msg)
        return None
    print(c["text"], flush=True)  # console
    return None


class _ChannelHeld(Exception):
    """A channel answered 429 with Retry-After: nothing more goes to it in this run."""


def _msgid(notification_id: str) -> str:
    return message_id(notification_id)


def alert_metadata(msg: AlertMessage, route: str) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT,
            "event_payload": {"alert_id": msg.alert_id, "topic": msg.topic, "story_id": msg.story_id,
                              **({"route": route} if route != "default" else {})}}


def mute_command(msg: AlertMessage, days: int = 7) -> str:
    until = (msg.created_at + timedelta(days=days)).strftime("%Y-%m-%d")
    return f'newsmon silence add --story {msg.story_id} --topic {msg.topic} --until {until} --comment "muted from Slack"'


def with_mute(payload: dict[str, Any], msg: AlertMessage, *, copies: int | None = None) -> dict[str, Any]:
    """The alert's blocks plus a last context line: the outlet/copy count and the command that
    mutes this story (Slack has no way to run it from the message without an app server)."""
    blocks = list(payload.get("blocks") or [])
    items = []
    if copies:
        items.append({"type": "mrkdwn", "text": f"{len(msg.outlets)} outlets, {copies} copies so far"})
    items.append({"type": "mrkdwn", "text": f"mute this story: `{mute_command(msg)}`"})
    blocks.append({"type": "context", "elements": items})
    return {**payload, "blocks": blocks}
