"""Topic labels and backfilled matches: what analysts teach a topic, and what a topic change
records over history without alerting (tables from migration 006)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pipeline.errors import StoreError
from pipeline.store import LAKE, Store, _insert

LABELS = ("about", "mentions", "no")


def add_topic_label(store: Store, article_id: str, topic: str, label: str, by: str, at: datetime, note: str = "") -> None:
    """Record one judgement; the article must be in the store."""
    if label not in LABELS:
        raise StoreError(f"label {label!r} is not one of {', '.join(LABELS)}")
    with store.transaction() as con:
        found = con.execute(f"SELECT count(*) FROM {LAKE}.articles WHERE article_id = ?", [article_id]).fetchone()
        if not found or not found[0]:
            raise StoreError(
                f"no stored article {article_id!r}; find ids with "
                "`newsmon query \"SELECT article_id, title FROM articles ORDER BY stored_at DESC LIMIT 20\"`"
            )
        _insert(con, "topic_labels", [{
            "article_id": article_id, "topic": topic, "label": label, "labelled_by": by, "labelled_at": at,
            "note": note or None,
        }])


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
