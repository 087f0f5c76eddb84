"""rematch on the demo's store: a new topic's matches over history are recorded as backfill,
never alerted; an interrupted run resumes where it stopped and ends with the same rows as an
uninterrupted one; a repeated chunk writes nothing twice."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.backfill import checkpoint_path, rematch
from pipeline.stages.topics import load_topics
from pipeline.store import Store
from tests.dashboard.conftest import copy_store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    from pipeline.demo import run_demo

    d = tmp_path_factory.mktemp("rematch") / "store"
    assert run_demo(data_dir=str(d), out=io.StringIO()) == 0
    return d


@pytest.fixture
def changed_topics(tmp_path) -> Path:
    """The seed topics plus a new one: sanctions under another id, so every match of it is new."""
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")  # exemplar paths are relative to the topic files
    d = tmp_path / "seeds" / "topics"
    text = (d / "sanctions.yaml").read_text(encoding="utf-8").replace("id: sanctions", "id: sanctions-v2", 1)
    (d / "sanctions-v2.yaml").write_text(text, encoding="utf-8")
    return d


def _rows(store_dir: Path) -> tuple[list, int]:
    with Store.open(store_dir, read_only=True) as s:
        _, rows = s.query("SELECT article_id, topic, level, backfill FROM topic_matches WHERE topic = 'sanctions-v2' "
                          "ORDER BY 1")
        outbox = s.scalar("SELECT count(*) FROM alert_outbox")
    return rows, outbox


def test_interrupted_rematch_resumes_and_matches_an_uninterrupted_one(demo_store, changed_topics, tmp_path, monkeypatch):
    topic = [t for t in load_topics(changed_topics) if t.id == "sanctions-v2"]
    since = datetime.now(UTC) - timedelta(days=30)
    full, cut = copy_store(demo_store, tmp_path / "full"), copy_store(demo_store, tmp_path / "cut")
    _, outbox_before = _rows(full)
    with Store.open(full) as s:
        whole = rematch(s, topic, since, job="j", now=datetime.now(UTC), chunk=2)
    want, outbox = _rows(full)
    assert want and all(r[3] is True for r in want)  # marked backfill
    assert outbox == outbox_before  # never alerted
    assert whole.written == len(want)

    class Killed(Exception):
        pass

    def stop_after_two_chunks(p):
        if p.done >= 4:
            raise Killed

    with Store.open(cut) as s, pytest.raises(Killed):
        rematch(s, topic, since, job="j", now=datetime.now(UTC), chunk=2, on_progress=stop_after_two_chunks)
    # A crash after a chunk's commit but before its checkpoint: that chunk is done again.
    import pipeline.backfill as bf

    real = bf.write_atomic
    calls = {"n": 0}

    def fail_once(path, text):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Killed
        real(path, text)

    monkeypatch.setattr(bf, "write_atomic", fail_once)
    with Store.open(cut) as s, pytest.raises(Killed):
        rematch(s, topic, since, job="j", now=datetime.now(UTC), chunk=2)
    monkeypatch.setattr(bf, "write_atomic", real)
    with Store.open(cut) as s:
        rest = rematch(s, topic, datetime.now(UTC), job="j", now=datetime.now(UTC), chunk=2)
    assert rest.resumed_from == 4  # went on after the last checkpoint, with the first run's `since`
    assert rest.done == rest.total == whole.total
    got, outbox = _rows(cut)
    assert got == want  # the same rows, none twice
    assert outbox == outbox_before


def test_rematch_command_shows_progress_and_feeds_the_backtest_view(demo_store, changed_topics, tmp_path):
    store = copy_store(demo_store, tmp_path / "s")
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "rematch", "--data-dir", str(store), "--topics",
                        str(changed_topics), "--topic", "sanctions-v2", "--since", "30d", "--chunk", "3"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "article" in r.stderr and "100%" in r.stderr  # the progress bar
    assert "recorded as backfill (never alerted)" in r.stdout
    assert checkpoint_path(store, "rematch-sanctions-v2").exists()
    rows, _ = _rows(store)
    from pipeline.dashboard import pages
    from pipeline.dashboard.app import Readers
    from pipeline.dashboard.queries import Filters

    readers = Readers(store)
    try:
        page = pages.topics(readers.run, Filters.default(topic="sanctions-v2"))
    finally:
        readers.close()
    back = page.block("backtest")
    assert sum(r[3] for r in back.rows) == len(rows)  # backfill matches per day add up
    alerting = {r[0] for r in rows if r[2] == "alert"}
    assert sum(r[2] for r in back.rows) >= 1 if alerting else True


def test_unknown_topic_is_a_clear_error(demo_store, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "rematch", "--data-dir", str(demo_store),
                        "--topic", "nope"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and "no topic nope" in r.stderr
