"""Store upkeep: what keeps a lake that takes a commit a minute fast for months.

DuckLake repairs nothing by itself. Every batch adds a few Parquet files and snapshots, small
inserts are inlined into the catalog, an UPDATE leaves the old file behind, and the catalog file
only grows. `maintain` runs, in order:

0. delete the stored pages older than `keep_pages` (`store.keep_pages_days`; migration 008);
1. compact the rollups (`rollups.compact`): one row per bucket instead of one per batch;
2. flush inlined data: rows held in the catalog go to Parquet (`ducklake_flush_inlined_data`);
3. merge small adjacent files (`ducklake_merge_adjacent_files`) and rewrite files whose rows are
   mostly deleted (`ducklake_rewrite_data_files`);
4. expire snapshots older than the retention (`ducklake_expire_snapshots`): time travel is kept
   for `snapshot_retention_days`;
5. delete the files no remaining snapshot needs, once unneeded for `file_grace_minutes`
   (`ducklake_cleanup_old_files`);
6. vacuum the SQLite catalog when enough of it is free pages.

Readers never wait for it: each step is a DuckLake commit like a batch, and a reader keeps
reading the snapshot its query started on; the files of that snapshot stay for the grace period.
Steps 2-3 run one table at a time, each in a transaction of its own, so the daemon's polls and
batches take the store between them instead of waiting for the whole run. The catalog vacuum
holds SQLite's write lock for the time of a copy of the catalog (a few MB: milliseconds to a
second); readers that meet it wait through their busy timeout.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.store import rollups

if TYPE_CHECKING:
    from pipeline.store import Store

log = logging.getLogger("newsmon.store.maintenance")

LAKE = "lake"


@dataclass(frozen=True)
class MaintenanceSettings:
    """What `maintain` does; built from the `maintenance:` settings (pipeline.config)."""

    snapshot_retention: timedelta = timedelta(days=2)
    file_grace: timedelta = timedelta(hours=1)
    flush_inlined_data: bool = True
    merge_files: bool = True
    merge_max_file_bytes: int = 128_000_000
    rewrite_delete_threshold: float = 0.25
    compact_rollups: bool = True
    vacuum_catalog: bool = True
    vacuum_min_free_fraction: float = 0.2
    keep_pages: timedelta | None = timedelta(days=30)  # stored pages older than this are deleted

    @classmethod
    def from_config(cls, m: Any, keep_pages_days: float | None = 30) -> MaintenanceSettings:
        return cls(
            keep_pages=None if keep_pages_days is None else timedelta(days=keep_pages_days),
            snapshot_retention=timedelta(days=m.snapshot_retention_days),
            file_grace=timedelta(minutes=m.file_grace_minutes),
            flush_inlined_data=m.flush_inlined_data,
            merge_files=m.merge_files,
            merge_max_file_bytes=int(m.merge_max_file_mb * 1_000_000),
            rewrite_delete_threshold=m.rewrite_delete_threshold,
            compact_rollups=m.compact_rollups,
            vacuum_catalog=m.vacuum_catalog,
            vacuum_min_free_fraction=m.vacuum_min_free_fraction,
        )


@dataclass(frozen=True)
class StoreHealth:
    """What fragments a lake, as `newsmon status` and the metrics show it."""

    files: int  # live data files (Parquet) of the current snapshot
    file_bytes: int
    delete_files: int  # live delete files (rows deleted from a data file)
    files_on_disk: int  # every data/delete file the catalog still tracks, live or awaiting cleanup
    files_awaiting_cleanup: int
    snapshots: int
    inlined_rows: int  # rows held in the catalog instead of Parquet (live ones)
    catalog_bytes: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class MaintenanceReport:
    steps: list[tuple[str, str, float, str]] = field(default_factory=list)  # (step, table, seconds, result)
    before: StoreHealth | None = None
    after: StoreHealth | None = None
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"{step:<20} {table:<18} {sec:7.2f} s  {result}" for step, table, sec, result in self.steps]
        if self.before and self.after:
            for k, v in self.before.as_dict().items():
                out.append(f"{k:<24} {v:>12,} -> {self.after.as_dict()[k]:>12,}")
        out.append(f"total {self.seconds:.2f} s")
        return out


def store_health(store: Store) -> StoreHealth:
    """Counts from the catalog: files, snapshots, inlined rows, its size on disk."""
    meta = f"__ducklake_metadata_{LAKE}"
    q = store.scalar
    files = q(f"SELECT count(*) FROM {meta}.ducklake_data_file WHERE end_snapshot IS NULL")
    file_bytes = q(f"SELECT coalesce(sum(file_size_bytes), 0) FROM {meta}.ducklake_data_file WHERE end_snapshot IS NULL")
    deletes = q(f"SELECT count(*) FROM {meta}.ducklake_delete_file WHERE end_snapshot IS NULL")
    tracked = q(
        f"SELECT (SELECT count(*) FROM {meta}.ducklake_data_file) + (SELECT count(*) FROM {meta}.ducklake_delete_file)"
    )
    awaiting = q(f"SELECT count(*) FROM {meta}.ducklake_files_scheduled_for_deletion")
    snapshots = q(f"SELECT count(*) FROM {meta}.ducklake_snapshot")
    inlined = 0
    _, tables = store.query(f"SELECT table_name FROM {meta}.ducklake_inlined_data_tables")
    for (name,) in tables:
        with contextlib.suppress(Exception):  # a table dropped by a concurrent flush: counts 0
            inlined += int(q(f"SELECT count(*) FROM {meta}.{name} WHERE end_snapshot IS NULL") or 0)
    catalog = store.data_dir / "catalog.sqlite"
    size = catalog.stat().st_size if catalog.exists() else 0
    return StoreHealth(
        int(files), int(file_bytes), int(deletes), int(tracked) + int(awaiting), int(awaiting), int(snapshots),
        inlined, size,
    )


@dataclass(frozen=True)
class _TableState:
    inlined_rows: int = 0
    files: int = 0
    delete_files: int = 0


def _table_states(store: Store) -> dict[str, _TableState]:
    """Per live table: what a step could do for it. Steps skip the tables with nothing to do, so
    a run over a tidy store is a handful of quick catalog reads, not a commit per table."""
    meta = f"__ducklake_metadata_{LAKE}"
    _, rows = store.query(
        f"""SELECT t.table_name,
                   (SELECT count(*) FROM {meta}.ducklake_data_file f
                     WHERE f.table_id = t.table_id AND f.end_snapshot IS NULL),
                   (SELECT count(*) FROM {meta}.ducklake_delete_file d
                     WHERE d.table_id = t.table_id AND d.end_snapshot IS NULL),
                   t.table_id
            FROM {meta}.ducklake_table t WHERE t.end_snapshot IS NULL ORDER BY t.table_name"""
    )
    _, inl = store.query(f"SELECT table_id, table_name FROM {meta}.ducklake_inlined_data_tables")
    inlined: dict[int, int] = {}
    for table_id, name in inl:
        with contextlib.suppress(Exception):  # dropped meanwhile: nothing to flush
            inlined[table_id] = inlined.get(table_id, 0) + int(
                store.scalar(f"SELECT count(*) FROM {meta}.{name} WHERE end_snapshot IS NULL") or 0
            )
    return {name: _TableState(inlined.get(tid, 0), int(files), int(dels)) for name, files, dels, tid in rows}


def maintain(
    store: Store,
    settings: MaintenanceSettings,
    now: datetime,
    *,
    progress: Callable[[str], None] | None = None,
    wall_now: datetime | None = None,
) -> MaintenanceReport:
    """Run the upkeep steps on a writable store (the daemon's, or `newsmon maintain`'s).

    Each step is its own transaction under the store's lock; between steps the lock is free.
    A failing step is logged and the others still run (the next run retries it); the report
    says which steps ran and what each did. `now` is the daemon's clock (it decides which rollup
    buckets are closed); snapshots and file deletions are stamped by DuckLake with the wall
    clock, so retention and grace are measured against `wall_now` (default: the wall clock).
    """
    wall = wall_now or datetime.now(UTC)
    if store.read_only:
        raise ValueError("maintenance needs the writable store")
    report = MaintenanceReport()
    t_all = time.monotonic()
    report.before = store_health(store)
    say = progress or (lambda _msg: None)

    def step(name: str, table: str, run: Callable[[], str]) -> None:
        t = time.monotonic()
        try:
            result = run()
        except Exception as e:  # one step failing must not stop the others (e.g. a busy catalog)
            result = f"failed: {type(e).__name__}: {e}"[:300]
            log.warning("maintenance_step_failed step=%s table=%s error=%s", name, table, result)
        sec = time.monotonic() - t
        report.steps.append((name, table, sec, result))
        log.info("maintenance_step step=%s table=%s seconds=%.2f result=%s", name, table, sec, result)
        say(f"{name} {table}: {result} ({sec:.2f} s)")

    def call(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with store.transaction() as con:
            return con.execute(sql, params or []).fetchall()

    if settings.keep_pages is not None:
        def prune_pages() -> str:
            rows = call(f"DELETE FROM {LAKE}.pages WHERE stored_at < ?", [now - settings.keep_pages])
            return f"{rows[0][0] if rows else 0} pages older than {settings.keep_pages.days} days deleted"

        step("prune_pages", "pages", prune_pages)
    if settings.compact_rollups:
        def compact() -> str:
            with store.transaction() as con:
                removed = rollups.compact(con, now)
            return ", ".join(f"{k} -{v}" for k, v in removed.items())

        step("compact_rollups", "rollup_*", compact)
    if settings.flush_inlined_data:
        for t, st in _table_states(store).items():
            if st.inlined_rows:
                step("flush_inlined", t, lambda t=t: _rows_result(
                    call(f"CALL ducklake_flush_inlined_data('{LAKE}', table_name => '{t}')"), 2, "rows"))
    if settings.merge_files:
        for t, st in _table_states(store).items():
            if st.files > 1:
                step("merge_files", t, lambda t=t: _rows_result(
                    call(f"CALL ducklake_merge_adjacent_files('{LAKE}', '{t}', max_file_size => ?)",
                         [settings.merge_max_file_bytes]), 2, "files merged"))
            if st.delete_files:
                step("rewrite_deletes", t, lambda t=t: _rows_result(
                    call(f"CALL ducklake_rewrite_data_files('{LAKE}', '{t}', delete_threshold => ?)",
                         [settings.rewrite_delete_threshold]), 2, "files rewritten"))

    def expire() -> str:
        rows = call(f"CALL ducklake_expire_snapshots('{LAKE}', older_than => ?)", [wall - settings.snapshot_retention])
        return f"{len(rows)} expired"

    def cleanup() -> str:
        rows = call(f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => ?)", [wall - settings.file_grace])
        return f"{len(rows)} deleted"

    step("expire_snapshots", "*", expire)
    step("cleanup_files", "*", cleanup)
    if settings.vacuum_catalog and store.location.embedded_catalog:  # PostgreSQL vacuums itself
        step("vacuum_catalog", "catalog.sqlite", lambda: _vacuum(store, settings.vacuum_min_free_fraction))
    report.after = store_health(store)
    report.seconds = time.monotonic() - t_all
    log.info("maintenance_done seconds=%.2f before=%s after=%s", report.seconds, report.before, report.after)
    return report


def _rows_result(rows: list[tuple[Any, ...]], col: int, what: str) -> str:
    return f"{sum(int(r[col] or 0) for r in rows)} {what}"


def _vacuum(store: Store, min_free: float) -> str:
    """VACUUM the SQLite catalog when at least `min_free` of its pages are free.

    Run through a connection of our own while the store's lock is held, so no DuckLake
    transaction of this process is open on the catalog.
    """
    path: Path = store.data_dir / "catalog.sqlite"
    with store._lock, contextlib.closing(sqlite3.connect(path, timeout=30)) as db:  # noqa: SLF001 - the store's own lock
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        if not pages or free / pages < min_free:
            return f"skipped: {free} of {pages} pages free"
        before = path.stat().st_size
        db.execute("VACUUM")
        return f"{before:,} -> {path.stat().st_size:,} bytes"
