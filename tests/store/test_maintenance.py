"""Store maintenance: it repairs fragmentation, and readers in other processes keep working."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.store import Store
from pipeline.store.maintenance import MaintenanceSettings, maintain, store_health
from tests.store.test_rollups import _load, _random_batches

ROOT = Path(__file__).resolve().parents[2]

# One statement reads one snapshot: every figure in a row must agree with the others.
_READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pipeline.store import Store
    data, out, stop = Path(sys.argv[1]), open(sys.argv[2], "w"), Path(sys.argv[3])
    SQL = '''SELECT (SELECT count(*) FROM articles),
                    (SELECT sum(articles) FROM rollup_counts WHERE grain = 'day' AND dim = 'all'),
                    (SELECT count(*) FROM items WHERE disposition <> 'pending'),
                    (SELECT sum(items) FROM rollup_feed WHERE grain = 'day'),
                    (SELECT count(DISTINCT story_id) FROM story_members)'''
    kept = Store.open(data, read_only=True)  # a long-lived reader, like a notebook
    n = 0
    while not stop.exists():
        n += 1
        t = time.time()
        try:
            if n % 2:
                row = kept.query(SQL)[1][0]
            else:  # and a fresh one per query, like `newsmon query`
                with Store.open(data, read_only=True) as s:
                    row = s.query(SQL)[1][0]
            rec = {"t0": t, "t1": time.time(), "row": [int(x or 0) for x in row]}
        except Exception as e:
            rec = {"t0": t, "t1": time.time(), "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(rec) + "\\n")
        out.flush()
    kept.close()
    """
)


@pytest.mark.embedded_store  # counts Parquet files under lake/ and catalog.sqlite's bytes
def test_maintenance_compacts_a_fragmented_store(tmp_path: Path) -> None:
    batches = _random_batches(seed=7, n_batches=16)
    with Store.open(tmp_path / "d") as store:
        _load(store, batches)
        _, before_rows = store.query("SELECT count(*), count(DISTINCT story_id) FROM articles")
        before = store_health(store)
        assert before.inlined_rows > 0 and before.snapshots > 30
        report = maintain(store, MaintenanceSettings(snapshot_retention=timedelta(0), file_grace=timedelta(0)),
                          batches[-1][0] + timedelta(days=2))
        after = store_health(store)
        assert not [s for s in report.steps if s[3].startswith("failed")]
        assert after.inlined_rows == 0
        assert after.snapshots == 1  # the one a retention of 0 keeps: the current state
        assert after.files_awaiting_cleanup == 0
        assert after.catalog_bytes < before.catalog_bytes
        # Only the layout changed.
        assert store.query("SELECT count(*), count(DISTINCT story_id) FROM articles")[1] == before_rows
        lake_files = {p.name for p in (tmp_path / "d" / "lake").rglob("*.parquet")}
        assert len(lake_files) == after.files_on_disk  # superseded files deleted from disk too


@pytest.mark.slow
def test_a_reader_process_keeps_working_and_consistent_during_maintenance(tmp_path: Path) -> None:
    data = tmp_path / "d"
    batches = _random_batches(seed=9, n_batches=15)
    out, stop = tmp_path / "reader.jsonl", tmp_path / "stop"
    with Store.open(data) as store:
        _load(store, batches[:5])
        reader = subprocess.Popen([sys.executable, "-c", _READER, str(data), str(out), str(stop)], cwd=ROOT)
        try:
            deadline = time.monotonic() + 120
            while (not out.exists() or out.read_text().count("\n") < 3) and time.monotonic() < deadline:
                time.sleep(0.1)
            windows = []
            # Maintenance with the default grace (files kept an hour after they stop being needed)
            # and every snapshot older than now expired, between batches that keep writing.
            settings = MaintenanceSettings(snapshot_retention=timedelta(0))
            for lo, hi in ((5, 10), (10, 15)):
                t = time.time()
                maintain(store, settings, batches[hi - 1][0])
                windows.append((t, time.time()))
                _load(store, batches[lo:hi])
            t = time.time()
            maintain(store, settings, batches[-1][0] + timedelta(days=2))
            windows.append((t, time.time()))
            time.sleep(0.5)
        finally:
            stop.touch()
            reader.wait(timeout=60)
        final = store.query(
            "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM items WHERE disposition <> 'pending')"
        )[1][0]
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    errors = [r["error"] for r in recs if "error" in r]
    assert errors == []
    during = [r for r in recs if any(r["t0"] < b and r["t1"] > a for a, b in windows)]
    assert len(during) >= 5, f"only {len(during)} reads overlapped maintenance"
    for r in recs:
        articles, rolled_articles, items, rolled_items, _stories = r["row"]
        assert articles == rolled_articles and items == rolled_items  # one snapshot: figures agree
    counts = [r["row"][0] for r in recs]
    assert counts == sorted(counts)  # never a step back in time
    assert counts[-1] == final[0]  # and the last reads saw the final state


def test_maintain_and_status_commands_show_the_store_figures(tmp_path: Path, capsys) -> None:
    from pipeline.cli import main

    with Store.open(tmp_path / "d") as store:
        _load(store, _random_batches(seed=3, n_batches=4))
    assert main(["status", "--data-dir", str(tmp_path / "d")]) == 0
    before = capsys.readouterr().out
    assert "store: 0 data files" in before and "inlined rows" in before and "snapshots" in before
    assert main(["maintain", "--data-dir", str(tmp_path / "d"), "--retention-days", "0", "--grace-minutes", "0"]) == 0
    report = capsys.readouterr().out
    assert "flush_inlined" in report and "inlined_rows" in report
    assert main(["status", "--data-dir", str(tmp_path / "d")]) == 0
    assert " 0 inlined rows, " in capsys.readouterr().out


def test_the_daemon_schedules_maintenance_and_exports_store_metrics(tmp_path: Path) -> None:
    from pipeline import config
    from pipeline.daemon import Daemon

    sources = tmp_path / "sources.yaml"
    sources.write_text("feeds:\n  - id: f1\n    url: http://127.0.0.1:9/feed.xml\n", encoding="utf-8")
    cfg = config.load(sources_path=sources, data_dir=tmp_path / "d", env={},
                      overrides={"maintenance.snapshot_retention_days": 0})
    daemon = Daemon(cfg, notifiers=[])
    try:
        _load(daemon.store, _random_batches(seed=4, n_batches=3))
        report = daemon.maintain()
        assert report.after is not None and report.after.inlined_rows == 0
        text = daemon.metrics.exposition().decode()
        assert "newsmon_store_inlined_rows 0.0" in text
        assert 'newsmon_maintenance_runs_total{result="ok"} 1.0' in text
        assert f"newsmon_store_snapshots {float(report.after.snapshots)}" in text
    finally:
        daemon.close()
