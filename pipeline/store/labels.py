"""Topic labels and backfilled matches: what analysts teach a topic, and what a topic change
records over history without alerting (tables from migration 006).

A store has one writer (store/lock.py), and while the daemon runs it is that writer. An analyst's
label is then appended to `<data_dir>/topic_labels.pending.jsonl` (under an flock, fsynced), and
the daemon moves pending labels into `topic_labels` after its next batch; `newsmon topics train`
reads both, so a label counts at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError
from pipeline.fileio import locked
from pipeline.store import LAKE, Store, _insert
from pipeline.store.lock import read_holder

PENDING = "topic_labels.pending.jsonl"

LABELS = ("about", "mentions", "no")


def add_topic_label(
    data_dir: Path, article_id: str, topic: str, label: str, by: str, at: datetime, note: str = ""
) -> str:
    """Record one judgement of a stored article. Returns "stored", or "queued" when the daemon holds
    the store (the label waits in the pending file, and counts for training at once)."""
    if label not in LABELS:
        raise StoreError(f"label {label!r} is not one of {', '.join(LABELS)}")
    row = {"article_id": article_id, "topic": topic, "label": label, "labelled_by": by, "labelled_at": at,
           "note": note or None}
    with Store.open(data_dir, read_only=True) as reader:
        if not reader.scalar("SELECT count(*) FROM articles WHERE article_id = ?", [article_id]):
            raise StoreError(
                f"no stored article {article_id!r}; find ids with "
                "`newsmon query \"SELECT article_id, title FROM articles ORDER BY stored_at DESC LIMIT 20\"`"
            )
    if read_holder(data_dir) is not None:
        with locked(Path(data_dir) / PENDING, "a") as fh:
            fh.write(json.dumps({**row, "labelled_at": at.isoformat()}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return "queued"
    with Store.open(data_dir) as store:
        import_pending_labels(store)
        with store.transaction() as con:
            _insert(con, "topic_labels", [row])
    return "stored"


def pending_labels(data_dir: Path) -> list[dict[str, Any]]:
    """Labels queued while the daemon held the store, oldest first."""
    path = Path(data_dir) / PENDING
    if not path.exists():
        return []
    with locked(path, "r") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def import_pending_labels(store: Store) -> int:
    """Move queued labels into `topic_labels` (the writer calls this); returns how many."""
    path = store.data_dir / PENDING
    if not path.exists():
        return 0
    with locked(path, "r+") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
        if rows:
            for r in rows:
                r["labelled_at"] = datetime.fromisoformat(r["labelled_at"])
            with store.transaction() as con:
                _insert(con, "topic_labels", rows)
        fh.seek(0)
        fh.truncate()  # only after the rows are committed: a crash before this imports them again
    return len(rows)


def record_backfill(store: Store, matches: Sequence[dict[str, Any]], at: datetime) -> int:
    """Store matches found over history, marked `backfill`; nothing goes to the alert outbox.
    A (topic, article) that already has a match is left as it is. Returns the rows written."""
    if not matches:
        return 0
    rows = []
    with store.transaction() as con:
        topic = matches[0]["topic"]
        have = {r[0] for r in con.execute(
            f"SELECT article_id FROM {LAKE}.topic_matches WHERE topic = ?", [topic]).fetchall()}
        for m in matches:
            if m["article_id"] in have:
                continue
            rows.append({
                "article_id": m["article_id"], "story_id": m["story_id"], "topic": m["topic"],
                "score": m["score"], "level": m["level"], "evidence": json.dumps(m["evidence"], ensure_ascii=False),
                "matched_at": at, "backfill": True,
            })
        _insert(con, "topic_matches", rows)
    return len(rows)
