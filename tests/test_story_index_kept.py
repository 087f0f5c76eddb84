"""The daemon keeps its story index between batches, and the store stays the truth.

Feeds, pages and the store are real (loopback demo server, DuckLake). The spool is drained in
batches of two items, so the seed stories are folded across batches: the second half of a story
must meet the first half in the kept index, not in a history read again from the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import config
from pipeline.daemon import Daemon
from pipeline.demo import DemoServer
from pipeline.stages.dedup import DedupSettings
from pipeline.stages.stories import WarmHistories
from pipeline.stories.persist import read_header

pytestmark = pytest.mark.slow


def _daemon(tmp_path: Path, server: DemoServer, **overrides: object) -> Daemon:
    tmp_path.mkdir(parents=True, exist_ok=True)
    sources = tmp_path / "sources.yaml"
    sources.write_text(server.sources_yaml(), encoding="utf-8")
    settings = {
        "fetch.allow_private_addresses": True,
        "fetch.per_host_min_gap_seconds": 0,
        "pipeline.max_batch_items": 2,
        **overrides,
    }
    cfg = config.load(sources_path=sources, data_dir=tmp_path / "data", env={}, overrides=settings)
    # The demo's articles are from August 2025: a clock just after them keeps them in the history
    # window (a history read from the store is the last dedup_history_days by the clock).
    return Daemon(cfg, notifiers=[], clock=lambda: datetime(2025, 8, 3, 12, tzinfo=UTC))


def _count_history_reads(d: Daemon) -> list[int]:
    calls: list[int] = []
    real = d.store.dedup_history

    def counted(since):  # type: ignore[no-untyped-def]
        rows = real(since)
        calls.append(len(rows))
        return rows

    d.store.dedup_history = counted  # type: ignore[method-assign]
    return calls


def _outcome(d: Daemon) -> tuple[dict[str, str], list[tuple[str, ...]]]:
    """Each item's disposition by URL, and the stories as sets of item URLs."""
    _, rows = d.store.query("SELECT url, disposition FROM items")
    dispositions = dict(rows)
    _, rows = d.store.query(
        "SELECT list(i.url ORDER BY i.url) FROM story_members m JOIN items i USING (item_id) GROUP BY m.story_id"
    )
    return dispositions, sorted(tuple(r[0]) for r in rows)


def _cold_outcome(tmp_path: Path, server: DemoServer) -> tuple[dict[str, str], list[tuple[str, ...]]]:
    """The same spool drained with the index rebuilt from the store for every batch."""
    d = _daemon(tmp_path / "cold", server, **{"pipeline.beam_args": ["--direct_running_mode=multi_processing", "--direct_num_workers=1"]})
    try:
        reads = _count_history_reads(d)
        d.run_once()
        assert len(reads) >= 5  # one read per batch: this is the path the kept index replaces
        return _outcome(d)
    finally:
        d.close()


def test_history_is_indexed_once_and_later_batches_fold_against_the_kept_index(tmp_path: Path) -> None:
    with DemoServer() as server:
        d = _daemon(tmp_path / "warm", server)
        try:
            reads = _count_history_reads(d)
            _, batches, _ = d.run_once()
            warm = _outcome(d)
            held = len(WarmHistories.get(d._stories_name))
            exposition = d.metrics.exposition()
        finally:
            d.close()
        cold = _cold_outcome(tmp_path, server)
    assert len(batches) >= 5
    assert reads == [0]  # read once, when the store was still empty; never again
    # Nine articles were folded and indexed (stored or exact copies); the three from May are older
    # than the 14-day history window by the clock, and the index forgot them as the store would.
    assert sum(v in ("stored", "exact_copy") for v in warm[0].values()) == 9 and held == 6
    assert b"newsmon_story_index_articles 6.0" in exposition
    assert warm == cold
    dispositions, stories = warm
    assert list(dispositions.values()).count("duplicate_url") == 1 and "pending" not in dispositions.values()
    # The seed story told in two languages is one story even when its halves came in two batches.
    assert any(
        any("putin-unlikely-to-bow-to-ultimatum" in u for u in s) and any("kallor-putin-ger-inte-efter" in u for u in s)
        for s in stories
    )


def _fail_third_load(d: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    real = d.store.load_batch
    loads: list[int] = []

    def failing_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        loads.append(1)
        if len(loads) == 3:
            raise OSError("disk full while committing")
        return real(*args, **kwargs)

    monkeypatch.setattr(d.store, "load_batch", failing_third)


def test_a_batch_that_fails_after_folding_reloads_the_saved_index_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DemoServer() as server:
        d = _daemon(tmp_path / "warm", server)
        try:
            reads = _count_history_reads(d)
            _fail_third_load(d, monkeypatch)
            with pytest.raises(OSError):
                d.run_once()
            assert d._stories is None  # it held the failed batch's articles: dropped
            saved = read_header(d._story_index_path())
            assert saved is not None and saved["batch_id"] == d._store_mark(saved["batch_id"].split("#")[0])
            assert saved["batch_id"].endswith("#2")  # tied to the second batch, the last committed
            d.run_once()  # the failed batch's items are still pending: folded again, now for real
            warm = _outcome(d)
        finally:
            d.close()
        cold = _cold_outcome(tmp_path, server)
    # Read from the store once (empty, at the start); after the failure the index saved with the
    # last committed batch was loaded instead of a rebuild from the store.
    assert reads == [0]
    # Without the drop, the failed batch's articles would be found in the index as already stored
    # ("duplicate_url") and never reach the store.
    assert warm == cold


def test_a_restart_loads_the_saved_index_and_a_torn_or_stale_one_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DemoServer() as server:
        first = _daemon(tmp_path / "warm", server)
        try:
            _fail_third_load(first, monkeypatch)
            with pytest.raises(OSError):
                first.run_once()
            path = first._story_index_path()
            saved = {p.name: p.read_bytes() for p in path.iterdir()}
        finally:
            first.close()
        manifest = json.loads(saved["manifest.json"])
        # Saved after each committed batch: the second save appended to the log of the first.
        assert manifest["seq"] >= 2 and manifest["log"]["bytes"] > 0

        def restore() -> None:
            for p in path.iterdir():
                p.unlink()
            for name, data in saved.items():
                (path / name).write_bytes(data)

        # A torn log (a crash mid-write that the manifest already counted) is detected and rebuilt.
        log = path / manifest["log"]["file"]
        log.write_bytes(saved[log.name][:-100])
        torn = _daemon(tmp_path / "warm", server)
        try:
            assert torn._load_saved_stories(_settings(torn)) is None
        finally:
            torn.close()
        # An index saved after another batch than the store's last one is stale.
        restore()
        (path / "manifest.json").write_text(json.dumps(dict(manifest, batch_id="20250801T000000-00000000#1")))
        stale = _daemon(tmp_path / "warm", server)
        try:
            assert stale._load_saved_stories(_settings(stale)) is None
        finally:
            stale.close()
        # The whole index: a restart loads it and never reads the history from the store.
        restore()
        second = _daemon(tmp_path / "warm", server)
        try:
            reads = _count_history_reads(second)
            second.run_once()
            warm = _outcome(second)
        finally:
            second.close()
        cold = _cold_outcome(tmp_path, server)
    assert reads == []
    assert warm == cold


def _settings(d: Daemon) -> DedupSettings:
    p = d.config.settings.pipeline
    return DedupSettings(window_days=p.dedup_window_days, retention_days=p.dedup_history_days)
