"""Silences: mute alerts by topic, story, source or route for a while (table alert_silences, 007).

A silence has matchers (each NULL = any): `topic`, `story_id`, `source` (an outlet carrying the
story, or the feed that raised the alert) and `route`; a start, an end, an author and a comment.
An alert that a silence matches when it would be sent is recorded as `silenced` (with the
silence's id), in the delivery log and the notification log: not sent, not lost. Thread replies
of a silenced story are not sent while the silence holds.

The store has one writer. While the daemon runs, `newsmon silence add|expire` append the change
to `<data_dir>/alert_silences.pending.jsonl` (flock, fsync) and the daemon applies it at its next
alert run; `silence list` shows pending changes too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.alert.routes import AlertFacts
from pipeline.fileio import locked
from pipeline.models import parse_datetime
from pipeline.store import LAKE, Store, _insert
from pipeline.store.lock import read_holder

PENDING = "alert_silences.pending.jsonl"


@dataclass(frozen=True)
class Silence:
    silence_id: str
    topic: str | None
    story_id: str | None
    source: str | None
    route: str | None
    starts_at: datetime
    ends_at: datetime
    author: str
    comment: str
    created_at: datetime
    expired_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        end = min(self.ends_at, self.expired_at) if self.expired_at else self.ends_at
        return self.starts_at <= now < end

    def matches(self, facts: AlertFacts, route: str | None = None) -> bool:
        if self.topic and self.topic != facts.topic:
            return False
        if self.story_id and self.story_id != facts.story_id:
            return False
        if self.route and route is not None and self.route != route:
            return False
        return not (self.source and self.source not in facts.outlets and self.source != facts.feed_id)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("topic", self.topic), ("story", self.story_id), ("source", self.source),
                                           ("route", self.route)) if v]
        return " ".join(parts) or "everything"


def new_silence_id(created_at: datetime, **matchers: Any) -> str:
    key = json.dumps({**matchers, "at": created_at.isoformat()}, sort_keys=True, default=str)
    return "sil-" + hashlib.sha1(key.encode()).hexdigest()[:10]


_COLS = ("silence_id", "topic", "story_id", "source", "route", "starts_at", "ends_at", "author", "comment",
         "created_at", "expired_at")


def load_silences(store: Store) -> list[Silence]:
    """Every silence in the store, newest first (expired ones included)."""
    _, rows = store.query(f"SELECT {', '.join(_COLS)} FROM {LAKE}.alert_silences ORDER BY created_at DESC, silence_id")
    return [Silence(*r) for r in rows]


def active_silences(store: Store, now: datetime) -> list[Silence]:
    return [s for s in load_silences(store) if s.active(now)]


def first_match(silences: list[Silence], facts: AlertFacts, route: str, now: datetime) -> Silence | None:
    for s in silences:
        if s.active(now) and s.matches(facts, route):
            return s
    return None


# -- changes: straight into the store, or queued while the daemon holds it ------------------------


def add_silence(data_dir: Path, s: Silence) -> str:
    """Record a silence; "stored", or "queued" when the daemon holds the store."""
    return _change(data_dir, {"op": "add", **{c: getattr(s, c) for c in _COLS}})


def expire_silence(data_dir: Path, silence_id: str, at: datetime) -> str:
    return _change(data_dir, {"op": "expire", "silence_id": silence_id, "expired_at": at})


def _change(data_dir: Path, change: dict[str, Any]) -> str:
    if read_holder(data_dir) is not None:
        with locked(Path(data_dir) / PENDING, "a") as fh:
            fh.write(json.dumps(change, default=lambda v: v.isoformat()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return "queued"
    with Store.open(data_dir) as store:
        apply_pending(store)
        _apply(store, [change])
    return "stored"


def pending_changes(data_dir: Path) -> list[dict[str, Any]]:
    path = Path(data_dir) / PENDING
    if not path.exists():
        return []
    with locked(path, "r") as fh:
        return _parse(fh.read())


def apply_pending(store: Store) -> int:
    """Move queued silence changes into the store (the writer runs this each alert run)."""
    path = Path(store.data_dir) / PENDING
    if not path.exists():
        return 0
    with locked(path, "r+") as fh:
        changes = _parse(fh.read())
        _apply(store, changes)
        fh.seek(0)
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())
    return len(changes)


def _parse(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn last line of a writer that died mid-append: nothing was promised
        for k in ("starts_at", "ends_at", "created_at", "expired_at"):
            if isinstance(row.get(k), str):
                row[k] = parse_datetime(row[k])
        out.append(row)
    return out


def _apply(store: Store, changes: list[dict[str, Any]]) -> None:
    if not changes:
        return
    with store.transaction() as con:
        known = {r[0] for r in con.execute(f"SELECT silence_id FROM {LAKE}.alert_silences").fetchall()}
        adds = []
        for c in changes:
            if c["op"] == "add" and c["silence_id"] not in known:
                adds.append({k: c.get(k) for k in _COLS})
                known.add(c["silence_id"])
        _insert(con, "alert_silences", adds)
        for c in changes:
            if c["op"] == "expire":
                con.execute(
                    f"UPDATE {LAKE}.alert_silences SET expired_at = ? WHERE silence_id = ? AND expired_at IS NULL",
                    [c["expired_at"], c["silence_id"]],
                )
