"""The notification log and the queries of the alert lifecycle (tables of migration 007).

Reads and appends only; the engine (lifecycle.py) decides. Every row is an event: a claim
('sending') before a channel is called, an outcome after, or a decision (silenced, folded,
skipped_empty). The latest row of a notification is its state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pipeline.store import LAKE, Store, _insert, _keys

COLUMNS = ("notification_id", "route", "channel", "kind", "alert_id", "topic", "story_id", "seq", "attempt",
           "status", "outlets", "copies", "upto", "receipt", "thread", "broadcast", "detail", "noted_at",
           "next_attempt_at")
DONE_FIRST = ("sent", "permanent_error", "skipped_in_doubt", "silenced", "folded")
DONE = ("sent", "permanent_error", "skipped_in_doubt", "skipped_empty")


def nid(*parts: object) -> str:
    return "n-" + hashlib.sha1("\x00".join(str(p) for p in parts).encode()).hexdigest()[:16]


def row(**values: Any) -> dict[str, Any]:
    out = {c: values.get(c) for c in COLUMNS}
    if isinstance(out["detail"], dict | list):
        out["detail"] = json.dumps(out["detail"], ensure_ascii=False, default=str)
    return out


def append(store: Store, nf_rows: Sequence[dict[str, Any]], deliveries: Sequence[dict[str, Any]] = ()) -> None:
    """Notification rows and delivery rows in one transaction."""
    if not nf_rows and not deliveries:
        return
    with store.transaction() as con:
        _insert(con, "alert_notifications", [dict(r) for r in nf_rows])
        _insert(con, "alert_deliveries", [dict(d) for d in deliveries])


def delivery(alert_id: str, channel: str, attempt: int, status: str, now: datetime, *, error: str | None = None,
             next_attempt_at: datetime | None = None, receipt: str | None = None) -> dict[str, Any]:
    return {"alert_id": alert_id, "channel": channel, "attempt": attempt, "status": status, "error": error,
            "attempted_at": now, "next_attempt_at": next_attempt_at, "receipt": receipt}


@dataclass(frozen=True)
class DueFirst:
    alert_id: str
    channel: str
    attempt: int
    topic: str
    story_id: str
    payload: dict[str, Any]
    created_at: datetime
    claimed_at: datetime | None  # the last attempt was claimed and has no outcome: in doubt
    last_claim_at: datetime | None  # when the last attempt (if any) was claimed
    feed_id: str | None
    feed_tags: tuple[str, ...]


def due_first(store: Store, channels: Sequence[str], now: datetime, *, max_attempts: int,
              max_age: timedelta = timedelta(days=2)) -> list[DueFirst]:
    """Outbox rows not yet done on each channel key, whose retry time has come (store.due_alerts,
    with the lifecycle's decisions, silenced and folded, counting as done)."""
    if not channels:
        return []
    done = ", ".join(f"'{s}'" for s in DONE_FIRST)
    _, rows = store.query(
        f"""
        WITH ch AS (SELECT unnest(?::VARCHAR[]) AS channel),
        a AS (
            SELECT alert_id, channel, attempt,
                   bool_or(status IN ({done})) AS done,
                   min(attempted_at) FILTER (WHERE status = 'sending') AS claimed_at,
                   bool_or(status <> 'sending') AS resolved,
                   max(next_attempt_at) AS next_at
            FROM {LAKE}.alert_deliveries GROUP BY alert_id, channel, attempt
        ),
        d AS (
            SELECT alert_id, channel, max(attempt) AS attempts, bool_or(done) AS done,
                   arg_max(CASE WHEN resolved THEN NULL ELSE claimed_at END, attempt) AS claimed_at,
                   arg_max(claimed_at, attempt) AS last_claim_at,
                   arg_max(next_at, attempt) AS next_at
            FROM a GROUP BY alert_id, channel
        )
        SELECT o.alert_id, ch.channel, coalesce(d.attempts, 0) + 1, o.topic, o.story_id, o.payload, o.created_at,
               d.claimed_at, d.last_claim_at, art.feed_id, f.tags
        FROM {LAKE}.alert_outbox o CROSS JOIN ch
        LEFT JOIN d ON d.alert_id = o.alert_id AND d.channel = ch.channel
        LEFT JOIN {LAKE}.articles art ON art.article_id = o.article_id
        LEFT JOIN {LAKE}.feeds f ON f.feed_id = art.feed_id
        WHERE NOT coalesce(d.done, false)
          AND (d.claimed_at IS NOT NULL
               OR (coalesce(d.attempts, 0) < ? AND (d.next_at IS NULL OR d.next_at <= ?)))
          AND o.created_at >= ? AND o.created_at <= ?
        ORDER BY o.created_at, o.alert_id, ch.channel
        """,
        [list(channels), max_attempts, now, now - max_age, now],
    )
    return [DueFirst(r[0], r[1], int(r[2]), r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9], tuple(r[10] or ()))
            for r in rows]


@dataclass
class StoryState:
    outlets: dict[str, datetime] = field(default_factory=dict)  # outlet -> first seen in the story
    copies: int = 0
    upto: datetime | None = None

    def outlets_in_order(self) -> list[str]:
        return [o for o, _ in sorted(self.outlets.items(), key=lambda kv: (kv[1], kv[0]))]


def story_states(store: Store, story_ids: Iterable[str], now: datetime) -> dict[str, StoryState]:
    ids = sorted(set(story_ids))
    out: dict[str, StoryState] = {s: StoryState() for s in ids}
    if not ids:
        return out
    with store.transaction() as con, _keys(con, ids) as keys:
        rows = con.execute(
            f"""SELECT story_id, coalesce(sitename, feed_id) AS outlet, min(seen_at), count(*), max(seen_at)
                FROM {LAKE}.story_members WHERE story_id IN (SELECT k FROM {keys}) AND seen_at <= ?
                GROUP BY 1, 2""",
            [now],
        ).fetchall()
    for story, outlet, first, n, last in rows:
        st = out[story]
        if outlet:
            st.outlets[outlet] = first
        st.copies += int(n)
        st.upto = last if st.upto is None or (last and last > st.upto) else st.upto
    return out


def latest(store: Store, *, channel: str | None = None, kinds: Sequence[str], since: datetime,
           statuses: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The latest row of each notification of these kinds (on a channel) noted since `since`,
    with `claimed_at`: when its latest attempt was claimed. At the same instant an outcome is
    later than a claim, and a claim later than a queued message (a clock may give them one time)."""
    where = ["kind IN (SELECT unnest(?::VARCHAR[]))", "noted_at >= ?"]
    params: list[Any] = [list(kinds), since]
    if channel is not None:
        where.append("channel = ?")
        params.append(channel)
    _, rows = store.query(
        f"""SELECT {', '.join(COLUMNS)}, claimed_at FROM (
                SELECT *, max(noted_at) FILTER (WHERE status = 'sending')
                           OVER (PARTITION BY notification_id) AS claimed_at,
                       row_number() OVER (PARTITION BY notification_id
                           ORDER BY noted_at DESC, CASE status WHEN 'queued' THEN 2 WHEN 'sending' THEN 1 ELSE 0 END) AS rn
                FROM {LAKE}.alert_notifications WHERE {' AND '.join(where)}
            ) WHERE rn = 1 ORDER BY noted_at, notification_id""",
        params,
    )
    out = [dict(zip((*COLUMNS, "claimed_at"), r, strict=True)) for r in rows]
    if statuses is not None:
        out = [r for r in out if r["status"] in statuses]
    for r in out:
        try:
            r["content"] = json.loads(r["detail"]) if r["detail"] and r["detail"].startswith("{") else {}
        except ValueError:
            r["content"] = {}
    return out


def channel_holds(store: Store, now: datetime) -> dict[str, datetime]:
    _, rows = store.query(
        f"SELECT channel, max(until) FROM {LAKE}.alert_channel_holds WHERE until > ? GROUP BY channel", [now]
    )
    return {r[0]: r[1] for r in rows}


def save_hold(store: Store, channel: str, until: datetime, reason: str, now: datetime) -> None:
    with store.transaction() as con:
        _insert(con, "alert_channel_holds", [{"channel": channel, "until": until, "reason": reason, "set_at": now}])


# -- rows queued by operator verbs while the daemon holds the store ---------------------------------

PENDING = "alert_notifications.pending.jsonl"
_TIMES = ("noted_at", "next_attempt_at")


def record_or_queue(data_dir: Any, rows: Sequence[dict[str, Any]]) -> str:
    """Log rows an operator verb wrote (`alerts test`, `alerts replay`): into the store, or, while
    the daemon holds it, appended to `<data_dir>/alert_notifications.pending.jsonl` (flock, fsync)
    for the daemon to record at its next alert run. Returns "stored" or "queued"."""
    import os
    from pathlib import Path

    from pipeline.fileio import locked
    from pipeline.store.lock import read_holder

    if not rows:
        return "stored"
    if read_holder(data_dir) is not None:
        with locked(Path(data_dir) / PENDING, "a") as fh:
            for r in rows:
                fh.write(json.dumps({c: r.get(c) for c in COLUMNS}, default=lambda v: v.isoformat()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return "queued"
    with Store.open(data_dir) as store:
        apply_pending(store)
        append(store, rows)
    return "stored"


def apply_pending(store: Store) -> int:
    """Record the queued rows (the writer runs this at each alert run). A row already in the log
    (same notification and status: a run that died after recording, before emptying the queue)
    is not recorded twice."""
    import os
    from pathlib import Path

    from pipeline.fileio import locked
    from pipeline.models import parse_datetime

    path = Path(store.data_dir) / PENDING
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with locked(path, "r+") as fh:
        rows = []
        for line in fh.read().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a torn last line of a verb that died mid-append: nothing was promised
            for k in _TIMES:
                if isinstance(r.get(k), str):
                    r[k] = parse_datetime(r[k])
            rows.append({c: r.get(c) for c in COLUMNS})
        if rows:
            _, known = store.query(
                f"SELECT notification_id, status FROM {LAKE}.alert_notifications "
                "WHERE notification_id IN (SELECT unnest(?::VARCHAR[]))",
                [sorted({r["notification_id"] for r in rows})],
            )
            have = {(a, b) for a, b in known}
            append(store, [r for r in rows if (r["notification_id"], r["status"]) not in have])
        fh.seek(0)
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())
    return len(rows)
