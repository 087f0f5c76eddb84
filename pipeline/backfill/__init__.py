"""Backfill: run topics over stored history after a change, with progress, resumable after a kill.

`rematch(store, topics, since, ...)` walks the articles stored since `since` in (stored_at,
article_id) order, a chunk at a time, matches each against the topics as their files say now,
and records the new (article, topic) matches marked `backfill` (migration 006): they never reach
the alert outbox, so a topic change never floods a channel with history, and the dashboard's
backtest view shows what the change would have alerted.

Resumable: after each chunk's transaction commits, a checkpoint file (`<data_dir>/backfill/`,
written atomically) records the last article done. A rerun with the same topics and definitions
continues after it; a crash between the commit and the checkpoint only repeats that chunk, and
repeating is harmless: a match already stored for (article, topic) is never written twice.
A changed topic file starts over (the matches it found are those of another definition).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.fileio import write_atomic
from pipeline.models import to_dict
from pipeline.store import LAKE, Store
from pipeline.topics.score import match_article

CHUNK = 500


@dataclass
class Progress:
    done: int
    total: int
    matches: int
    written: int
    resumed_from: int = 0


def definition_hash(topics: Sequence[Any]) -> str:
    """What the topics say now: their files (and learned models) byte for byte."""
    h = hashlib.sha256()
    for t in sorted(topics, key=lambda t: t.id):
        h.update(t.id.encode() + b"\0")
        src = Path(t.source) if t.source else None
        for p in (src, src.with_name(f"{t.id}.model.json") if src else None):
            if p is not None and p.exists():
                h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def checkpoint_path(data_dir: Path, job: str) -> Path:
    return Path(data_dir) / "backfill" / f"{job}.json"


def rematch(
    store: Store,
    topics: Sequence[Any],
    since: datetime,
    *,
    job: str,
    now: datetime,
    chunk: int = CHUNK,
    restart: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Match `topics` over the articles stored since `since`; record new matches as backfill.

    `job` names the checkpoint (one per set of topics). Returns the counts of this run (done
    counts the articles passed, including those of an earlier, interrupted run)."""
    ck_path = checkpoint_path(store.data_dir, job)
    ck_path.parent.mkdir(parents=True, exist_ok=True)
    ident = {"topics": sorted(t.id for t in topics), "definition": definition_hash(topics)}
    ck: dict[str, Any] = {}
    if ck_path.exists() and not restart:
        ck = json.loads(ck_path.read_text(encoding="utf-8"))
        if {k: ck.get(k) for k in ident} != ident:
            ck = {}  # another definition: its progress does not count for this one
    if ck:
        since = datetime.fromisoformat(ck["since"])  # the instant the first run resolved `30d` to
        last: tuple[Any, str] | None = (datetime.fromisoformat(ck["last_stored_at"]), ck["last_article_id"])
    else:
        last = None
        ck = {**ident, "since": since.isoformat(), "done": 0, "matches": 0, "written": 0, "finished": False}
    total = int(store.scalar(f"SELECT count(*) FROM {LAKE}.articles WHERE stored_at >= ?", [since]) or 0)
    prog = Progress(done=int(ck["done"]), total=total, matches=0, written=0, resumed_from=int(ck["done"]))
    # A finished job run again goes on after its last article: what was stored since.
    by_id = {t.id: t for t in topics}
    while True:
        if last is None:
            _, rows = store.query(
                f"SELECT article_id, story_id, title, text, stored_at FROM {LAKE}.articles WHERE stored_at >= ? "
                "ORDER BY stored_at, article_id LIMIT ?", [since, chunk])
        else:
            _, rows = store.query(
                f"SELECT article_id, story_id, title, text, stored_at FROM {LAKE}.articles WHERE stored_at >= ? "
                "AND (stored_at > ? OR (stored_at = ? AND article_id > ?)) ORDER BY stored_at, article_id LIMIT ?",
                [since, last[0], last[0], last[1], chunk])
        if not rows:
            break
        found = []
        for aid, story_id, title, text, _ in rows:
            for m in match_article(aid, title or "", text or "", list(by_id.values())):
                found.append({"article_id": aid, "story_id": story_id, "topic": m.topic, "score": m.score,
                              "level": m.level, "matched_at": now, "backfill": True,
                              "evidence": json.dumps([to_dict(e) for e in m.evidence], ensure_ascii=False)})
        written = _record(store, found, [r[0] for r in rows])
        last = (rows[-1][4], rows[-1][0])
        prog.done += len(rows)
        prog.matches += len(found)
        prog.written += written
        ck.update(done=prog.done, matches=int(ck["matches"]) + len(found), written=int(ck["written"]) + written,
                  last_stored_at=last[0].isoformat(), last_article_id=last[1])
        write_atomic(ck_path, json.dumps(ck, indent=1))  # after the commit: at worst a chunk is redone
        if on_progress:
            on_progress(prog)
    ck["finished"] = True
    write_atomic(ck_path, json.dumps(ck, indent=1))
    return prog


def _record(store: Store, rows: list[dict[str, Any]], article_ids: list[str]) -> int:
    """Insert the matches no (article, topic) row has yet, in one transaction; never the outbox."""
    if not rows:
        return 0
    import pyarrow as pa

    data = pa.Table.from_pylist(rows)
    with store.transaction() as con:
        con.register("_backfill", data)
        try:
            marks = ", ".join("?" for _ in article_ids)
            before = con.execute(f"SELECT count(*) FROM {LAKE}.topic_matches WHERE article_id IN ({marks})",
                                 article_ids).fetchone()[0]  # type: ignore[index]
            cols = ", ".join(data.column_names)
            con.execute(
                f"""INSERT INTO {LAKE}.topic_matches ({cols})
                    SELECT {cols} FROM _backfill b
                    WHERE NOT EXISTS (SELECT 1 FROM {LAKE}.topic_matches t
                                      WHERE t.article_id IN ({marks}) AND t.article_id = b.article_id
                                        AND t.topic = b.topic)""", article_ids)
            after = con.execute(f"SELECT count(*) FROM {LAKE}.topic_matches WHERE article_id IN ({marks})",
                                article_ids).fetchone()[0]  # type: ignore[index]
        finally:
            con.unregister("_backfill")
    return int(after - before)
