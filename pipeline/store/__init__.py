"""The one module that owns the database.

Storage is a DuckLake: table data in Parquet files under `<data_dir>/lake/`, the catalog in a
SQLite file `<data_dir>/catalog.sqlite`. DuckDB queries it. We chose it over a plain `.duckdb`
file because a `.duckdb` file is locked by the process that writes it: an analyst could not even
open it read-only while the daemon runs. With a SQLite catalog, the daemon writes and any number
of analyst processes read at the same time, each seeing every committed transaction.

The daemon is the only writer (`Store.open(..., read_only=False)`); within it one lock serialises
transactions, so the poll, batch and alert jobs can run on different threads. DuckLake has no
UNIQUE constraints, so every insert here is an anti-join on the table's key (see the migration).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from pipeline.errors import StoreError
from pipeline.models import (
    DedupDoc,
    FeedItem,
    FeedState,
    ItemResult,
    to_json,
)
from pipeline.store import rollups
from pipeline.store.connection import StoreLocation, catalog_exists, connect, prepare_data_dir
from pipeline.store.lock import WriterLock
from pipeline.store.migrate import migrate

if TYPE_CHECKING:
    from pipeline.store.keys import KeySet

LAKE = "lake"


@dataclass(frozen=True)
class BatchSummary:
    batch_id: str
    items: int
    dispositions: dict[str, int]
    stories_new: int
    matches: int
    alerts_new: int
    dead_letters: int = 0  # items of this batch given up for good (rows added to dead_letters)


# ItemResult.disposition of a page download worth another try (pipeline.stages.download.RETRY):
# not a final disposition; load_batch keeps the item pending until its retry time, or gives it up.
RETRY = "retry"
# An extract_failed with this detail is a page without main text (a judgment); any other detail is
# an exception raised while extracting, which is dead-lettered.
_NO_TEXT = "no main text found"


@dataclass(frozen=True)
class RetryPolicy:
    """How items whose page could not be fetched for now are retried across batches.

    The n-th failed attempt (n < max_attempts) sets the item's `retry_at` to now + delay(n); the
    max_attempts-th gives it up: disposition download_failed and a dead letter. With the defaults
    an item is tried 6 times over about 2.6 hours (5, 10, 20, 40, 80 minutes apart).
    """

    max_attempts: int = 6
    base_delay: timedelta = timedelta(minutes=5)
    max_delay: timedelta = timedelta(hours=6)

    def delay(self, attempts: int) -> timedelta:
        return min(self.max_delay, self.base_delay * 2 ** min(30, max(0, attempts - 1)))


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class PollRecord:
    """One poll of one feed, as committed by `Store.record_polls`."""

    state: FeedState
    fetched_at: datetime
    outcome: str
    status: int | None
    error_kind: str | None
    error: str | None
    duration_ms: float
    items: tuple[FeedItem, ...] = ()


@dataclass(frozen=True)
class DueAlert:
    alert_id: str
    channel: str
    attempt: int  # the attempt number this send will be (1-based)
    topic: str
    story_id: str
    payload: dict[str, Any]
    # The previous attempt was claimed ('sending') but has no outcome: the process died while
    # the channel was being called, so the alert may or may not have arrived.
    claimed_at: datetime | None = None

    @property
    def in_doubt(self) -> bool:
        return self.claimed_at is not None


def alert_id_for(topic: str, story_id: str) -> str:
    return hashlib.sha1(f"{topic}\x00{story_id}".encode()).hexdigest()[:20]


class Store:
    """A handle on the lake. Use `Store.open()`; close it, or use it as a context manager."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, data_dir: Path, read_only: bool, lock: WriterLock | None = None,
        location: StoreLocation | None = None, disabled_optimizers: Sequence[str] = (),
    ) -> None:
        self._con = con
        self._disabled_optimizers = tuple(disabled_optimizers)
        self.location = location or StoreLocation()  # where the catalog and files are (connection.py)
        self._writer_lock = lock  # held by the one writer of this data directory (see store/lock.py)
        self._lock = threading.RLock()
        self.data_dir = data_dir
        self.read_only = read_only
        # The writer's in-memory key sets (store/keys.py), loaded on first use, and the keys the
        # open transaction wrote (added to the sets once it has committed).
        self._key_sets: dict[str, KeySet] | None = None
        self._txn_keys: dict[str, list[str]] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: str | Path, *, read_only: bool = False, location: StoreLocation | None = None,
             disabled_optimizers: Sequence[str] = ()) -> Store:
        """`location` None: NEWSMON_STORE_CATALOG / NEWSMON_STORE_DATA_PATH, else in `data_dir`.
        `disabled_optimizers` (readers only): DuckDB optimizer passes to skip (connection.connect)."""
        data_dir = Path(data_dir)
        location = StoreLocation.from_env() if location is None else location
        if read_only and not catalog_exists(data_dir, location):
            raise StoreError(
                f"no newsmon store at {data_dir} (catalog.sqlite missing); run `newsmon run --once` "
                "or `newsmon demo` first, or pass the right --data-dir"
            )
        if read_only:
            if location.embedded_catalog:
                _recover_catalog(data_dir / "catalog.sqlite")
            return cls(connect(data_dir, read_only=True, location=location, disabled_optimizers=disabled_optimizers),
                       data_dir, True, location=location, disabled_optimizers=disabled_optimizers)
        # The writer lock comes first: a second daemon must stop before it touches anything.
        prepare_data_dir(data_dir)
        lock = WriterLock(data_dir)
        try:
            con = connect(data_dir, location=location)
            try:
                applied = migrate(con, LAKE)
            except BaseException:
                con.close()
                raise
        except BaseException:
            lock.release()
            raise
        store = cls(con, data_dir, False, lock, location=location)
        if 5 in applied:  # rollups (005) on a store that already holds data: backfill them
            store._backfill_rollups()
        if 8 in applied:  # pages (008): into Parquet files, never inlined into the catalog
            with store.transaction() as con:
                con.execute(f"CALL ducklake_set_option('{LAKE}', 'data_inlining_row_limit', 0, table_name => 'pages')")
        return store

    def _backfill_rollups(self) -> None:
        from datetime import UTC

        if self.scalar(f"SELECT count(*) FROM {LAKE}.items WHERE disposition <> 'pending'"):
            with self.transaction() as con:
                rollups.rebuild(con, datetime.now(UTC))

    def close(self) -> None:
        with self._lock:
            self._con.close()
            if self._writer_lock is not None:
                self._writer_lock.release()
                self._writer_lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic unit: everything inside commits together or not at all."""
        with self._lock:
            self._con.execute("BEGIN TRANSACTION")
            self._txn_keys = {}
            try:
                try:
                    yield self._con
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
                self._con.execute("COMMIT")
                # Only now are the keys this transaction wrote in the store.
                if self._key_sets is not None:
                    for table, keys in self._txn_keys.items():
                        self._key_sets[table].add(keys)
            finally:
                self._txn_keys = None

    # -- key sets (pipeline/store/keys.py) ------------------------------------------------------

    def _key_set(self, table: str) -> KeySet:
        """The writer's in-memory set of `table`'s keys; loaded from the store on first use."""
        sets = self._key_sets
        if sets is None:
            # Here, not at import: numpy is not needed by readers (`newsmon query` starts faster).
            from pipeline.store.keys import INDEXED, KeySet, hash_sql

            with self._lock:
                if self._key_sets is None:
                    if self._txn_keys is not None:
                        # Loading inside a transaction would read its uncommitted rows as stored.
                        raise RuntimeError("key sets must be loaded before a transaction begins")
                    self._key_sets = {
                        t: KeySet(self._con.execute(
                            f"SELECT {hash_sql(k)} AS h FROM {LAKE}.{t} WHERE {k} IS NOT NULL").fetchnumpy()["h"])
                        for t, k in INDEXED
                    }
                sets = self._key_sets
        return sets[table]

    def _wrote_keys(self, table: str, keys: Iterable[str]) -> None:
        """Keys the open transaction inserted into an indexed table (see `transaction`)."""
        assert self._txn_keys is not None, "only inside a transaction"
        self._txn_keys.setdefault(table, []).extend(keys)

    def key_set_sizes(self) -> dict[str, tuple[int, int]]:
        """(keys, bytes) of each in-memory key set; loads them when needed (a writer only)."""
        return {t: (len(self._key_set(t)), self._key_set(t).nbytes) for t in ("items", "articles", "stories")}

    # -- generic reads --------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run analyst SQL against the lake (tables are reachable unqualified)."""
        with self._lock:
            try:
                return self._run(sql, params)
            except duckdb.Error as e:
                # A reader attached before a schema change can keep a stale catalog: once
                # maintenance drops an inlined-data table of the older schema version, every
                # query of that reader fails. Attaching again reads the catalog afresh.
                if not (self.read_only and "ducklake_inlined_data" in str(e)):
                    raise
                self._con.close()
                self._con = connect(self.data_dir, read_only=True, location=self.location,
                                    disabled_optimizers=self._disabled_optimizers)
                return self._run(sql, params)

    def _run(self, sql: str, params: Sequence[Any] | None) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self._con.execute(sql, params or [])
        if cur.description is None:
            return [], []
        cols = [d[0] for d in cur.description]
        return cols, cur.fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        _, rows = self.query(sql, params)
        return rows[0][0] if rows else None

    # -- feeds ----------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[Any], now: datetime) -> None:
        """Make the feeds table mirror sources.yaml (Source models)."""
        rows = [
            {
                "feed_id": f.id,
                "url": f.url,
                "name": f.name,
                "tags": list(f.tags),
                "interval_minutes": float(f.interval_minutes),
                "enabled": f.enabled,
                "updated_at": now,
            }
            for f in feeds
        ]
        with self.transaction() as con:
            con.execute(f"DELETE FROM {LAKE}.feeds")
            _insert(con, "feeds", rows)

    def feed_states(self) -> dict[str, FeedState]:
        cols, rows = self.query(f"SELECT * FROM {LAKE}.feed_state")
        return {r[0]: FeedState(**dict(zip(cols, r, strict=True))) for r in rows}

    def record_poll(
        self,
        state: FeedState,
        *,
        fetched_at: datetime,
        outcome: str,
        status: int | None,
        error_kind: str | None,
        error: str | None,
        duration_ms: float,
        items: Sequence[FeedItem] = (),
    ) -> list[FeedItem]:
        """Commit one poll (see `record_polls`); returns the items not seen before."""
        rec = PollRecord(state, fetched_at, outcome, status, error_kind, error, duration_ms, tuple(items))
        return self.record_polls([rec])[state.feed_id]

    def record_polls(self, polls: Sequence[PollRecord]) -> dict[str, list[FeedItem]]:
        """Commit many polls in one transaction: new items into the spool, each feed's state, and
        a fetch_log row per poll. Returns the new items per feed id.

        Items already seen (same item_id) are skipped. Items and states commit together, so a
        crash keeps both or neither: nothing is lost, and a re-poll after a crash finds the same
        items again. One transaction for a whole cycle's chunk, not one per feed: each DuckLake
        commit costs tens of milliseconds, which dominated a 2,000-feed cycle.
        """
        if not polls:
            return {}
        known = self._key_set("items")  # before the transaction (see _key_set)
        with self.transaction() as con:
            unique: dict[str, FeedItem] = {}
            for it in (it for p in polls for it in p.items):
                unique.setdefault(it.item_id, it)
            seen = known.known(unique)
            new = [it for iid, it in unique.items() if iid not in seen]
            # Attribute each new item to the first poll of the chunk that brought it.
            unclaimed = {it.item_id for it in new}
            new_per_poll: list[list[FeedItem]] = []
            for p in polls:
                mine = []
                for it in p.items:
                    if it.item_id in unclaimed:
                        unclaimed.discard(it.item_id)
                        mine.append(it)
                new_per_poll.append(mine)
            new_by_feed: dict[str, list[FeedItem]] = {p.state.feed_id: [] for p in polls}
            for p, mine in zip(polls, new_per_poll, strict=True):
                new_by_feed[p.state.feed_id].extend(mine)
            _insert(
                con,
                "items",
                [
                    {
                        "item_id": it.item_id,
                        "feed_id": it.feed_id,
                        "guid": it.guid,
                        "url": it.url,
                        "title": it.title,
                        "summary": it.summary,
                        "published": it.published,
                        "seen_at": it.seen_at,
                        "disposition": "pending",
                        "disposition_at": it.seen_at,
                    }
                    for it in new
                ],
            )
            self._wrote_keys("items", unique.keys() - seen)
            states: dict[str, dict[str, Any]] = {}
            added: dict[str, int] = {}
            for p, mine in zip(polls, new_per_poll, strict=True):  # a feed's last poll in the chunk wins
                fid = p.state.feed_id
                added[fid] = added.get(fid, 0) + len(mine)
                states[fid] = {**p.state.__dict__, "items_total": added[fid]}
            _upsert_feed_states(con, list(states.values()))
            _insert(
                con,
                "fetch_log",
                [
                    {
                        "feed_id": p.state.feed_id,
                        "fetched_at": p.fetched_at,
                        "outcome": p.outcome,
                        "status": p.status,
                        "error_kind": p.error_kind,
                        "error": p.error,
                        "new_items": len(mine),
                        "duration_ms": p.duration_ms,
                    }
                    for p, mine in zip(polls, new_per_poll, strict=True)
                ],
            )
        return new_by_feed

    # -- host holds (429/503 Retry-After, pipeline.fetch.hosts) ---------------------------------

    def host_holds(self, now: datetime) -> dict[str, datetime]:
        """The hosts held at `now` and until when. A writer also deletes the expired rows."""
        if not self.read_only and self.scalar(f"SELECT count(*) FROM {LAKE}.host_holds WHERE held_until <= ?", [now]):
            with self.transaction() as con:
                con.execute(f"DELETE FROM {LAKE}.host_holds WHERE held_until <= ?", [now])
        _, rows = self.query(
            f"SELECT host, max(held_until) FROM {LAKE}.host_holds WHERE held_until > ? GROUP BY host ORDER BY host",
            [now],
        )
        return {r[0]: r[1] for r in rows}

    def save_host_holds(self, holds: dict[str, datetime], now: datetime, *, reason: str = "retry_after") -> None:
        """Make `host_holds` hold exactly the unexpired entries of `holds` (the map in force)."""
        rows = [
            {"host": h, "held_until": t, "reason": reason, "updated_at": now}
            for h, t in sorted(holds.items())
            if t > now
        ]
        with self.transaction() as con:
            con.execute(f"DELETE FROM {LAKE}.host_holds")
            _insert(con, "host_holds", rows)

    # -- the spool ------------------------------------------------------------------------------

    def pending_items(self, limit: int, *, now: datetime | None = None) -> list[FeedItem]:
        """Pending items, oldest first. With `now`, items waiting for a retry (`retry_at` later than
        `now`, see `load_batch`) are left out."""
        where, params = "disposition = 'pending'", []
        if now is not None:
            where += " AND (retry_at IS NULL OR retry_at <= ?)"
            params.append(now)
        cols, rows = self.query(
            f"SELECT item_id, feed_id, guid, url, title, summary, published, seen_at FROM {LAKE}.items "
            f"WHERE {where} ORDER BY seen_at, item_id LIMIT ?",
            [*params, limit],
        )
        return [FeedItem(*r) for r in rows]

    def dedup_history(self, since: datetime) -> list[tuple[DedupDoc, str]]:
        """Recent stored articles with their story, oldest first: what folding compares against."""
        _, rows = self.query(
            f"SELECT article_id, text, title, canonical_url, published, coalesce(sitename, feed_id), story_id "
            f"FROM {LAKE}.articles WHERE coalesce(published, stored_at) >= ? ORDER BY stored_at, article_id",
            [since],
        )
        return [(DedupDoc(r[0], r[1], r[2] or "", r[3] or "", r[4], r[5] or ""), r[6]) for r in rows]

    def known_item_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of `ids` the spool already holds. The writer answers from its key set, without
        the store lock (the poll workers ask once per parsed feed); a reader probes the table."""
        if not self.read_only:
            return self._key_set("items").known(ids)
        with self._lock:
            return _existing(self._con, "items", "item_id", ids)

    # -- loading a batch ------------------------------------------------------------------------

    def load_batch(
        self,
        batch_id: str,
        results: Sequence[ItemResult],
        *,
        now: datetime,
        runner: str,
        started_at: datetime,
        topic_descriptions: dict[str, str] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> BatchSummary:
        """Commit a batch's results in one transaction; outbox rows for new (topic, story) alerts.

        Idempotent: results for items that are no longer pending (a batch loaded before a crash
        and replayed) are skipped, articles and stories already present are not inserted again,
        and an alert exists at most once per (topic, story).

        Failures: a RETRY result keeps its item pending with `attempts`, `retry_at` and
        `last_error` set (see `RetryPolicy`; the item carries this batch id, so a replay of the
        batch does not count the attempt twice); the last allowed attempt, a permanent
        download_failed and an extract_failed caused by an exception also get a `dead_letters`
        row (stage, key = item id, reason, attempts, last error, the item as payload).
        """
        topic_descriptions = topic_descriptions or {}
        article_keys, story_keys = self._key_set("articles"), self._key_set("stories")  # before the transaction
        with self.transaction() as con:
            # Items carry the seen_at their row was written with: the probes read recent files only.
            seen_since = min((r.item.seen_at for r in results), default=None)
            pending = _pending_ids(con, [r.item.item_id for r in results], exclude_batch=batch_id, seen_since=seen_since)
            results = [r for r in results if r.item.item_id in pending]
            attempts_before = _attempts(
                con, [r.item.item_id for r in results if r.disposition in (RETRY, "download_failed")], seen_since
            )
            retries: list[dict[str, Any]] = []
            dead: list[dict[str, Any]] = []
            known_articles = article_keys.known(r.article.article_id for r in results if r.article)
            known_stories = story_keys.known(r.assignment.story_id for r in results if r.assignment)
            known_alerts: set[str] = set()  # alert ids queued in this batch
            articles, stories, members, matches, outbox, dispositions = [], [], [], [], [], []
            pages: list[dict[str, Any]] = []  # the fetched HTML of the new articles (migration 008)
            counts: dict[str, int] = {}
            for r in results:
                disposition, detail = r.disposition, r.detail
                art, asg = r.article, r.assignment
                if disposition in (RETRY, "download_failed"):
                    n = attempts_before.get(r.item.item_id, 0) + 1
                    if disposition == RETRY and n < retry.max_attempts:
                        retries.append(
                            {
                                "item_id": r.item.item_id,
                                "attempts": n,
                                "retry_at": now + retry.delay(n),
                                "last_error": (detail or "")[:2000],
                                "batch_id": batch_id,
                            }
                        )
                        counts[RETRY] = counts.get(RETRY, 0) + 1
                        continue
                    reason = "retries_exhausted" if disposition == RETRY else "permanent_error"
                    dead.append(_dead_letter(r.item, "download", reason, n, detail, batch_id, now))
                    if disposition == RETRY:
                        disposition, detail = "download_failed", f"gave up after {n} attempts; last: {detail}"
                elif disposition == "extract_failed" and detail != _NO_TEXT:
                    dead.append(_dead_letter(r.item, "extract", "extract_error", 1, detail, batch_id, now))
                if disposition == "stored" and art is not None and art.article_id in known_articles:
                    disposition, detail = "duplicate_url", f"article {art.article_id} already stored"
                if disposition == "stored" and art is not None and asg is not None:
                    known_articles.add(art.article_id)
                    articles.append(
                        {
                            **{k: getattr(art, k) for k in _ARTICLE_COLS},
                            "stored_at": now,
                            "story_id": asg.story_id,
                            "link": asg.link,
                            "matched_article_id": asg.matched_doc_id,
                            "link_score": asg.score,
                            "batch_id": batch_id,
                            "wire_agency": r.wire_agency,
                        }
                    )
                    if art.page is not None:
                        pages.append(_page_row(art, now))
                    if asg.story_id not in known_stories:
                        known_stories.add(asg.story_id)
                        stories.append(
                            {
                                "story_id": asg.story_id,
                                "first_article_id": art.article_id,
                                "first_feed_id": art.feed_id,
                                "first_sitename": art.sitename,
                                "first_seen_at": r.item.seen_at,
                                "title": art.title,
                                "wire_agency": r.wire_agency,
                            }
                        )
                if asg is not None and disposition in ("stored", "exact_copy"):
                    members.append(
                        {
                            "story_id": asg.story_id,
                            "article_id": art.article_id if disposition == "stored" and art else asg.matched_doc_id,
                            "item_id": r.item.item_id,
                            "feed_id": r.item.feed_id,
                            "sitename": art.sitename if art else None,
                            "url": art.url if art else r.item.url,
                            "link": asg.link,
                            "matched_article_id": asg.matched_doc_id,
                            "score": asg.score,
                            "published": art.published if art else r.item.published,
                            "seen_at": r.item.seen_at,
                        }
                    )
                if disposition == "stored" and art is not None and asg is not None:
                    for m in r.matches:
                        matches.append(
                            {
                                "article_id": art.article_id,
                                "story_id": asg.story_id,
                                "topic": m.topic,
                                "score": m.score,
                                "level": m.level,
                                "evidence": json.dumps([e.__dict__ for e in m.evidence], ensure_ascii=False),
                                "matched_at": now,
                            }
                        )
                        if not m.alert:
                            continue
                        aid = alert_id_for(m.topic, asg.story_id)
                        if aid in known_alerts:
                            continue
                        known_alerts.add(aid)
                        outbox.append(
                            {
                                "alert_id": aid,
                                "topic": m.topic,
                                "story_id": asg.story_id,
                                "article_id": art.article_id,
                                "score": m.score,
                                "payload": json.dumps(
                                    _alert_payload(art, asg.story_id, m, topic_descriptions.get(m.topic, ""), now),
                                    ensure_ascii=False,
                                ),
                                "created_at": now,
                            }
                        )
                counts[disposition] = counts.get(disposition, 0) + 1
                dispositions.append(
                    {
                        "item_id": r.item.item_id,
                        "disposition": disposition,
                        "disposition_at": now,
                        "detail": detail,
                        "article_id": art.article_id if art else (asg.matched_doc_id if asg else None),
                        "batch_id": batch_id,
                    }
                )
            # One alert per (topic, story) ever: drop those an earlier batch already queued.
            real_known = _existing(con, "alert_outbox", "alert_id", [o["alert_id"] for o in outbox])
            outbox = [o for o in outbox if o["alert_id"] not in real_known]
            _insert(con, "articles", articles)
            _insert(con, "pages", pages)
            _insert(con, "stories", stories)
            self._wrote_keys("articles", (a["article_id"] for a in articles))
            self._wrote_keys("stories", (st["story_id"] for st in stories))
            _insert(con, "story_members", members)
            _insert(con, "topic_matches", matches)
            _insert(con, "alert_outbox", outbox)
            _update_dispositions(con, dispositions)
            _update_retries(con, retries)
            known_dead = _existing(con, "dead_letters", "key", [d["key"] for d in dead])
            dead = [d for d in dead if d["key"] not in known_dead]
            _insert(con, "dead_letters", dead)
            rollups.write_batch(
                con, now, articles=articles, members=members, matches=matches, stories=stories, outbox=outbox,
                dispositions=dispositions, feed_of={r.item.item_id: r.item.feed_id for r in results},
            )
            _insert(
                con,
                "batches",
                [
                    {
                        "batch_id": batch_id,
                        "started_at": started_at,
                        "finished_at": now,
                        "runner": runner,
                        "items": len(results),
                        "stored": counts.get("stored", 0),
                        "alerts": len(outbox),
                        "duration_seconds": (now - started_at).total_seconds(),
                    }
                ],
            )
        return BatchSummary(batch_id, len(results), counts, len(stories), len(matches), len(outbox), len(dead))

    # -- alerts ---------------------------------------------------------------------------------

    def due_alerts(
        self, channels: Sequence[str], now: datetime, *, max_attempts: int, max_age: timedelta = timedelta(days=2)
    ) -> list[DueAlert]:
        """Outbox rows not yet done on a channel, whose retry time has come.

        Attempts are numbered per (alert, channel); each may have a claim row ('sending') and an
        outcome row. Done means some attempt ended 'sent', 'permanent_error' or
        'skipped_in_doubt'. When the latest attempt was claimed without an outcome, the row comes
        back with `claimed_at` set (in doubt), whatever its retry time.
        """
        if not channels:
            return []
        _, rows = self.query(
            f"""
            WITH ch AS (SELECT unnest(?::VARCHAR[]) AS channel),
            a AS (
                SELECT alert_id, channel, attempt,
                       bool_or(status IN ('sent', 'permanent_error', 'skipped_in_doubt')) AS done,
                       min(attempted_at) FILTER (WHERE status = 'sending') AS claimed_at,
                       bool_or(status <> 'sending') AS resolved,
                       max(next_attempt_at) AS next_at
                FROM {LAKE}.alert_deliveries GROUP BY alert_id, channel, attempt
            ),
            d AS (
                SELECT alert_id, channel, max(attempt) AS attempts, bool_or(done) AS done,
                       arg_max(CASE WHEN resolved THEN NULL ELSE claimed_at END, attempt) AS claimed_at,
                       arg_max(next_at, attempt) AS next_at
                FROM a GROUP BY alert_id, channel
            )
            SELECT o.alert_id, ch.channel, coalesce(d.attempts, 0) + 1, o.topic, o.story_id, o.payload,
                   d.claimed_at
            FROM {LAKE}.alert_outbox o CROSS JOIN ch
            LEFT JOIN d ON d.alert_id = o.alert_id AND d.channel = ch.channel
            WHERE NOT coalesce(d.done, false)
              AND (d.claimed_at IS NOT NULL
                   OR (coalesce(d.attempts, 0) < ? AND (d.next_at IS NULL OR d.next_at <= ?)))
              AND o.created_at >= ?
            ORDER BY o.created_at, o.alert_id, ch.channel
            """,
            [list(channels), max_attempts, now, now - max_age],
        )
        return [DueAlert(r[0], r[1], int(r[2]), r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def record_delivery(
        self,
        alert_id: str,
        channel: str,
        attempt: int,
        status: str,
        *,
        now: datetime,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        receipt: str | None = None,
    ) -> None:
        """Append one row to the delivery log: a claim ('sending') or an outcome."""
        with self.transaction() as con:
            _insert(
                con,
                "alert_deliveries",
                [
                    {
                        "alert_id": alert_id,
                        "channel": channel,
                        "attempt": attempt,
                        "status": status,
                        "error": error,
                        "attempted_at": now,
                        "next_attempt_at": next_attempt_at,
                        "receipt": receipt,
                    }
                ],
            )

    # -- summaries ------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("feeds", "items", "articles", "stories", "story_members", "topic_matches", "alert_outbox"):
            out[table] = int(self.scalar(f"SELECT count(*) FROM {LAKE}.{table}"))
        return out

    # -- dead letters ---------------------------------------------------------------------------

    def dead_letter_count(self) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {LAKE}.dead_letters") or 0)

    def dead_letters(self, limit: int = 50) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The latest dead letters, newest first: what failed where, why, after how many attempts."""
        return self.query(
            f"""SELECT created_at, stage, reason, attempts, feed_id, key,
                       json_extract_string(payload, '$.url') AS url, error
                FROM {LAKE}.dead_letters ORDER BY created_at DESC, key LIMIT ?""",
            [limit],
        )

    # -- retries --------------------------------------------------------------------------------

    def retry_counts(self, now: datetime) -> tuple[int, datetime | None]:
        """Pending items waiting for a retry of their download, and the earliest retry time."""
        _, rows = self.query(
            f"SELECT count(*), min(retry_at) FROM {LAKE}.items WHERE disposition = 'pending' AND retry_at > ?",
            [now],
        )
        return int(rows[0][0]), rows[0][1]


# --- helpers -----------------------------------------------------------------------------------

_ARTICLE_COLS = (
    "article_id",
    "item_id",
    "feed_id",
    "url",
    "canonical_url",
    "title",
    "text",
    "published",
    "author",
    "sitename",
    "language",
    "text_hash",
    "fetched_at",
)


def _page_row(art: Any, now: datetime) -> dict[str, Any]:
    from pipeline.pages import CODEC, page_size

    return {"article_id": art.article_id, "item_id": art.item_id, "url": art.url, "fetched_at": art.fetched_at,
            "stored_at": now, "codec": CODEC, "html_bytes": page_size(art.page), "body": art.page}


def _alert_payload(art: Any, story_id: str, m: Any, description: str, now: datetime) -> dict[str, Any]:
    evidence = []
    for e in m.evidence:
        spans = ", ".join(f"'{s}'" for s in e.spans[:6])
        evidence.append(f"{e.kind} {e.detail} in {e.zone}" + (f": {spans}" if spans else ""))
    return {
        "topic": m.topic,
        "topic_description": description,
        "story_id": story_id,
        "title": art.title,
        "url": art.canonical_url or art.url,  # tracking parameters stripped
        "sitename": art.sitename,
        "published": art.published.isoformat() if art.published else None,
        "score": round(m.score, 4),
        "evidence": evidence[:8],
        "outlets": [art.sitename or art.feed_id],
        "created_at": now.isoformat(),
    }


def _recover_catalog(catalog: Path) -> None:
    """Roll back a catalog transaction that a killed writer left behind, before a read-only open.

    A writer killed during a commit leaves a "hot" rollback journal next to the SQLite catalog.
    SQLite rolls it back on the next read, but only through a connection that may write: a
    read-only attach fails with "attempt to write a readonly database" until the daemon starts
    again. A plain read through a read-write connection performs that rollback. SQLite's locks
    decide whether a journal is hot, so a live writer's journal is never touched. Without write
    permission nothing happens here and the attach reports the problem.
    """
    if not Path(f"{catalog}-journal").exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{catalog.resolve().as_uri()}?mode=rw", uri=True, timeout=30)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        pass


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    import pyarrow as pa  # here, not at import: readers (`newsmon query`) start faster without it

    data = pa.Table.from_pylist(rows)
    cols = ", ".join(data.column_names)
    con.register("_rows", data)
    try:
        con.execute(f"INSERT INTO {LAKE}.{table} ({cols}) SELECT {cols} FROM _rows")
    finally:
        con.unregister("_rows")


@contextlib.contextmanager
def _keys(con: duckdb.DuckDBPyConnection, values: Iterable[str]) -> Iterator[str]:
    """The values as a registered one-column (`k`) table; yields its name for `IN (SELECT k FROM name)`.

    Not `IN (SELECT unnest(?::VARCHAR[]))`: binding a list parameter of 2,000 ids made that probe
    15x slower than this (0.25 s against 0.018 s on 2,000 feed states), and it ran several times
    per commit."""
    import pyarrow as pa

    name = f"_keys_{next(_KEY_TABLES)}"
    con.register(name, pa.table({"k": pa.array(list(values), pa.string())}))
    try:
        yield name
    finally:
        con.unregister(name)


_KEY_TABLES = itertools.count()


def _existing(con: duckdb.DuckDBPyConnection, table: str, key: str, values: Iterable[str]) -> set[str]:
    values = list({v for v in values if v})
    if not values:
        return set()
    with _keys(con, values) as keys:
        rows = con.execute(f"SELECT DISTINCT {key} FROM {LAKE}.{table} WHERE {key} IN (SELECT k FROM {keys})").fetchall()
    return {r[0] for r in rows}


def _upsert_feed_states(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Write each row's feed state; its `items_total` is the count to add to the stored one.

    One UPDATE for the feeds already there (it adds the counts in SQL, so the totals need no
    probe first) and an INSERT only when some feed is new: in a steady cycle a chunk costs one
    pass over feed_state, not a probe, a DELETE and an INSERT."""
    if not rows:
        return
    import pyarrow as pa  # here, not at import: readers (`newsmon query`) start faster without it

    data = pa.Table.from_pylist(rows)
    cols = [c for c in data.column_names if c not in ("feed_id", "items_total")]
    con.register("_states", data)
    try:
        assignments = ", ".join(f"{c} = s.{c}" for c in cols)
        updated = con.execute(
            f"UPDATE {LAKE}.feed_state SET {assignments}, items_total = coalesce(feed_state.items_total, 0) + s.items_total "
            f"FROM _states s WHERE feed_state.feed_id = s.feed_id"
        ).fetchone()[0]
        if updated < len(rows):
            names = ", ".join(data.column_names)
            con.execute(
                f"INSERT INTO {LAKE}.feed_state ({names}) SELECT {names} FROM _states "
                f"WHERE feed_id NOT IN (SELECT feed_id FROM {LAKE}.feed_state)"
            )
    finally:
        con.unregister("_states")


def _pending_ids(
    con: duckdb.DuckDBPyConnection,
    ids: Sequence[str],
    exclude_batch: str | None = None,
    seen_since: datetime | None = None,
) -> set[str]:
    """Which of `ids` are pending; with `exclude_batch`, not those that batch already set to retry.

    `seen_since`, the earliest `seen_at` of the items asked about, lets DuckLake skip the files
    of older items by their statistics, so the probe does not grow with the history."""
    if not ids:
        return set()
    with _keys(con, ids) as keys:
        sql = f"SELECT item_id FROM {LAKE}.items WHERE disposition = 'pending' AND item_id IN (SELECT k FROM {keys})"
        params: list[Any] = []
        if seen_since is not None:
            sql += " AND seen_at >= ?"
            params.append(seen_since)
        if exclude_batch is not None:
            sql += " AND batch_id IS DISTINCT FROM ?"
            params.append(exclude_batch)
        rows = con.execute(sql, params).fetchall()
    return {r[0] for r in rows}


def _attempts(
    con: duckdb.DuckDBPyConnection, ids: Sequence[str], seen_since: datetime | None = None
) -> dict[str, int]:
    """Failed download attempts so far of each of `ids` (those never retried are left out)."""
    if not ids:
        return {}
    with _keys(con, ids) as keys:
        sql = f"SELECT item_id, attempts FROM {LAKE}.items WHERE attempts IS NOT NULL AND item_id IN (SELECT k FROM {keys})"
        params: list[Any] = []
        if seen_since is not None:
            sql += " AND seen_at >= ?"
            params.append(seen_since)
        rows = con.execute(sql, params).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _dead_letter(
    item: FeedItem, stage: str, reason: str, attempts: int, error: str | None, batch_id: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "stage": stage,
        "key": item.item_id,
        "error": (error or "")[:2000],
        "payload": to_json(item),  # the FeedItem: enough to replay it
        "created_at": now,
        "reason": reason,
        "attempts": attempts,
        "feed_id": item.feed_id,
        "batch_id": batch_id,
    }


def _update_items(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Set `columns` of the items named by each row's item_id to the row's values."""
    if not rows:
        return
    import pyarrow as pa  # here, not at import: readers (`newsmon query`) start faster without it

    data = pa.Table.from_pylist(rows)
    con.register("_upd", data)
    try:
        assignments = ", ".join(f"{c} = u.{c}" for c in columns)
        con.execute(f"UPDATE {LAKE}.items SET {assignments} FROM _upd u WHERE items.item_id = u.item_id")
    finally:
        con.unregister("_upd")


def _update_retries(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Items that stay pending after a failed attempt: count it and set the next attempt's time."""
    _update_items(con, rows, ("attempts", "retry_at", "last_error", "batch_id"))


def _update_dispositions(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    _update_items(con, rows, ("disposition", "disposition_at", "detail", "article_id", "batch_id"))
