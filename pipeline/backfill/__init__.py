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

`reprocess` (`rematch(..., reextract=Reextract(...))`) first runs the extractor again
(`pipeline.stages.extract.extract_article`, the pipeline's own code and settings) on each
article's stored page (table `pages`, migration 008), replaces the article's text and metadata
when they changed (stamping `reextracted_at` and `extractor`: the row is marked as rewritten by
a backfill), and matches the topics over the new text, in the same transaction as the matches.
The article keeps its id, story and link: re-extraction corrects what was read, not what was
folded. An article whose page is no longer kept (older than `store.keep_pages_days`, or stored
before migration 008) keeps its text and is matched on it; the run counts them and says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.fileio import write_atomic
from pipeline.models import to_dict

if TYPE_CHECKING:
    from pipeline.store import Store

# The store (DuckDB) and topic matching (wordfreq) are imported inside the functions that use them:
# `newsmon` imports this package to register its verbs, and every command would pay for them.

CHUNK = 500


@dataclass
class Progress:
    done: int
    total: int
    matches: int
    written: int
    resumed_from: int = 0
    # reprocess only (counted over this run and the interrupted ones before it):
    reextracted: int = 0   # text or metadata changed and was replaced
    unchanged: int = 0     # extracted again to the same text and metadata
    rejected: int = 0      # the extractor now finds no usable text: the stored text is kept
    no_page: int = 0       # no stored page (pruned, or stored before pages were kept)


@dataclass(frozen=True)
class Reextract:
    """Run the extractor again on the stored pages, with the pipeline's settings."""

    min_chars: int
    fast: bool = True

    def ident(self) -> str:
        import trafilatura

        return f"trafilatura {trafilatura.__version__} min_chars={self.min_chars} fast={self.fast}"


_META = ("title", "text", "published", "author", "sitename", "language", "text_hash")


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
    reextract: Reextract | None = None,
) -> Progress:
    """Match `topics` over the articles stored since `since`; record new matches as backfill.

    With `reextract`, each article's stored page is extracted again first (see the module's
    docstring). `job` names the checkpoint (one per set of topics). Returns the counts of this
    run (done counts the articles passed, including those of an earlier, interrupted run)."""
    from pipeline.store import LAKE
    from pipeline.topics.score import match_article

    ck_path = checkpoint_path(store.data_dir, job)
    ck_path.parent.mkdir(parents=True, exist_ok=True)
    ident = {"topics": sorted(t.id for t in topics), "definition": definition_hash(topics),
             "extractor": reextract.ident() if reextract else None}
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
    prog = Progress(done=int(ck["done"]), total=total, matches=0, written=0, resumed_from=int(ck["done"]),
                    **{k: int(ck.get(k, 0)) for k in _EXTRACT_COUNTS})
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
        updates: list[dict[str, Any]] = []
        if reextract is not None:
            rows, updates, counts = _reextract(store, rows, reextract, now)
            for k, v in counts.items():
                setattr(prog, k, getattr(prog, k) + v)
        found = []
        for aid, story_id, title, text, _ in rows:
            for m in match_article(aid, title or "", text or "", list(by_id.values())):
                found.append({"article_id": aid, "story_id": story_id, "topic": m.topic, "score": m.score,
                              "level": m.level, "matched_at": now, "backfill": True,
                              "evidence": json.dumps([to_dict(e) for e in m.evidence], ensure_ascii=False)})
        written = _record(store, found, [r[0] for r in rows], updates)
        last = (rows[-1][4], rows[-1][0])
        prog.done += len(rows)
        prog.matches += len(found)
        prog.written += written
        ck.update(done=prog.done, matches=int(ck["matches"]) + len(found), written=int(ck["written"]) + written,
                  last_stored_at=last[0].isoformat(), last_article_id=last[1],
                  **{k: getattr(prog, k) for k in _EXTRACT_COUNTS})
        write_atomic(ck_path, json.dumps(ck, indent=1))  # after the commit: at worst a chunk is redone
        if on_progress:
            on_progress(prog)
    ck["finished"] = True
    write_atomic(ck_path, json.dumps(ck, indent=1))
    return prog


_EXTRACT_COUNTS = ("reextracted", "unchanged", "rejected", "no_page")


def _reextract(store: Store, rows: list[tuple[Any, ...]], rx: Reextract, now: datetime):
    """Extract the chunk's stored pages again. Returns the chunk's rows with the new title and
    text where they changed, the article updates to write, and the counts."""
    from pipeline.models import FeedItem, Page
    from pipeline.pages import unpack_page
    from pipeline.stages.extract import Rejected, extract_article
    from pipeline.store import LAKE

    ids = [r[0] for r in rows]
    marks = ", ".join("?" for _ in ids)
    _, found = store.query(
        f"""SELECT a.article_id, p.url, p.codec, p.body, a.fetched_at, {", ".join("a." + c for c in _META)},
                   i.item_id, i.feed_id, i.guid, i.url, i.title, i.summary, i.published, i.seen_at
            FROM {LAKE}.articles a JOIN {LAKE}.pages p ON p.article_id = a.article_id
            LEFT JOIN {LAKE}.items i ON i.item_id = a.item_id
            WHERE a.article_id IN ({marks})""", ids)
    by_id = {r[0]: r for r in found}
    counts = dict.fromkeys(_EXTRACT_COUNTS, 0)
    out, updates = [], []
    ident = rx.ident()
    for row in rows:
        aid = row[0]
        got = by_id.get(aid)
        if got is None:
            counts["no_page"] += 1
            out.append(row)
            continue
        _, url, codec, body, fetched_at, *rest = got
        old = dict(zip(_META, rest[:len(_META)], strict=True))
        item_id, feed_id, guid, item_url, item_title, summary, published, seen_at = rest[len(_META):]
        item = FeedItem(item_id or "", feed_id or "", guid or "", item_url or url, item_title or "", summary or "",
                        published, seen_at or fetched_at)
        page = Page(item=item, final_url=url, status=200, html=unpack_page(bytes(body), codec))
        art = extract_article(page, min_chars=rx.min_chars, now=fetched_at, fast=rx.fast)
        if isinstance(art, Rejected):
            counts["rejected"] += 1
            out.append(row)
            continue
        new = {k: getattr(art, k) for k in _META}
        if all(new[k] == old[k] for k in _META):
            counts["unchanged"] += 1
            out.append(row)
            continue
        counts["reextracted"] += 1
        updates.append({"article_id": aid, **new, "reextracted_at": now, "extractor": ident})
        out.append((aid, row[1], art.title, art.text, row[4]))
    return out, updates, counts


def _record(store: Store, rows: list[dict[str, Any]], article_ids: list[str],
            updates: list[dict[str, Any]] | None = None) -> int:
    """Insert the matches no (article, topic) row has yet, and write the re-extracted articles,
    in one transaction; never the outbox."""
    from pipeline.store import LAKE

    if not rows and not updates:
        return 0
    import pyarrow as pa

    data = pa.Table.from_pylist(rows) if rows else None
    with store.transaction() as con:
        if updates:
            upd = pa.Table.from_pylist(updates)
            con.register("_reextracted", upd)
            try:
                sets = ", ".join(f"{c} = u.{c}" for c in upd.column_names if c != "article_id")
                con.execute(f"UPDATE {LAKE}.articles AS a SET {sets} FROM _reextracted u "
                            "WHERE a.article_id = u.article_id")
            finally:
                con.unregister("_reextracted")
        if data is None:
            return 0
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
