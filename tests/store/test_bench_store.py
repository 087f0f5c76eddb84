"""bench/bench_store.py in its small mode: it runs, and its figures show what maintenance does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.embedded_store  # copies and relocates the SQLite catalog
def test_the_store_benchmark_runs_small_and_maintenance_repairs_fragmentation(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_store.py"), "--small", "--json", str(out)],
        capture_output=True, text=True, timeout=1800, cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "ratios to the freshly compacted store" in run.stdout
    (res,) = json.loads(out.read_text()).values()
    on, off, compacted = res["maint_on"], res["maint_off"], res["compacted"]
    # Same data on both copies; only the layout differs.
    assert on["articles"] == off["articles"] == compacted["articles"] > res["fresh"]["articles"]
    assert on["maintenance_runs"] == 4 and off["maintenance_runs"] == 0
    assert on["snapshots"] < off["snapshots"] / 5
    assert on["inlined_rows"] < off["inlined_rows"]
    assert on["catalog_bytes"] < off["catalog_bytes"]
    assert compacted["inlined_rows"] == 0 and compacted["snapshots"] == 1
    for figure in ("trend_all_history", "dash_topic_trend", "probe_known_items", "cli_select_1"):
        assert figure in on and figure in compacted
