"""Health that tells the truth: a pipeline failing every batch, or a stale spool, is reported by
/healthz (503) and by `newsmon status --fail-on-error` (exit 1), with the last successful batch."""

from __future__ import annotations

import json
import logging
import shutil
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import config
from pipeline.cli import _setup_logging, main
from pipeline.daemon import Daemon
from pipeline.demo import DemoServer
from pipeline.metrics import FAILING_AFTER, Metrics, MetricsServer
from pipeline.models import FeedItem, FeedState
from pipeline.store import Store

ROOT = Path(__file__).resolve().parent.parent


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_healthz_is_503_when_the_batch_job_stops_completing_though_polls_go_on() -> None:
    clock = Clock(1_000_000.0)
    m = Metrics()
    server = MetricsServer(m, 0, stale_after=600, clock=clock).start()
    try:
        base = f"http://127.0.0.1:{server.port}/healthz"
        m.job_done("poll", when=clock.t)
        m.job_done("batch", when=clock.t)
        assert get(base)[0] == 200
        clock.t += 3600
        m.job_done("poll", when=clock.t)  # polling is fine, batches have stopped
        status, body = get(base)
        assert status == 503 and body["status"] == "stale" and body["stale_jobs"] == ["batch"]
        assert body["last_batch_ok_at"] == datetime.fromtimestamp(1_000_000, UTC).isoformat(timespec="seconds")
    finally:
        server.stop()


def test_healthz_is_503_failing_after_batches_fail_in_a_row() -> None:
    clock = Clock(1_000_000.0)
    m = Metrics()
    server = MetricsServer(m, 0, stale_after=600, clock=clock).start()
    try:
        base = f"http://127.0.0.1:{server.port}/healthz"
        m.job_done("poll", when=clock.t)
        for n in range(FAILING_AFTER):
            assert get(base)[0] == 200, n  # one failure can pass (a crash being bisected)
            m.job_failed("batch", "ConfigError: topics/x.yaml:3: bad")
        status, body = get(base)
        assert status == 503 and body["status"] == "failing" and body["batch_failures_in_row"] == FAILING_AFTER
        assert body["last_batch_error"] == "ConfigError: topics/x.yaml:3: bad"
        m.job_done("batch", when=clock.t)
        assert get(base)[0] == 200
    finally:
        server.stop()


@pytest.mark.slow
def test_a_broken_topic_file_fails_every_batch_and_status_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The incident: a topic file broken while the daemon runs crashes every batch. /healthz said
    200 ok, `status --fail-on-error` exited 0 and the log grew a Beam traceback per batch."""
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")  # exemplar paths are relative to the topic files
    topics = tmp_path / "seeds" / "topics"
    with DemoServer() as server:
        sources = tmp_path / "sources.yaml"
        sources.write_text(server.sources_yaml(), encoding="utf-8")
        settings = tmp_path / "newsmon.yaml"
        settings.write_text(f"topics_dir: {topics}\nfetch:\n  allow_private_addresses: true\n"
                            "  per_host_min_gap_seconds: 0\n", encoding="utf-8")
        cfg = config.load(settings, sources_path=sources, data_dir=tmp_path / "data", env={})
        d = Daemon(cfg, notifiers=[])
        metrics_server = MetricsServer(d.metrics, 0).start()
        try:
            d._guard(d.poll)()
            (topics / "sanctions.yaml").write_text("id: sanctions\nrules: [\n", encoding="utf-8")
            # The daemon's own logging (as `newsmon run` sets it up, without -v) onto stderr.
            root = logging.getLogger()
            saved = root.handlers[:]
            root.handlers = []
            capsys.readouterr()
            sizes = []
            try:
                _setup_logging(False)
                for _ in range(FAILING_AFTER):
                    d._guard(d.batch)()
                    sizes.append(len(capsys.readouterr().err))
            finally:
                root.handlers = saved
            # The traceback once (Beam's own copy dropped), then one line per failing batch.
            assert sizes[0] > 500 and all(n < 1500 for n in sizes[1:]), sizes
            status, body = get(f"http://127.0.0.1:{metrics_server.port}/healthz")
            assert status == 503 and body["status"] == "failing", body
            assert "sanctions.yaml" in body["last_batch_error"]
            capsys.readouterr()
            assert main(["status", "--data-dir", str(cfg.data_dir), "--sources", str(sources), "--fail-on-error"]) == 1
            out = capsys.readouterr().out
            assert "daemon: running (pid" in out
            assert f"batches: last succeeded never; {FAILING_AFTER} failed in a row since" in out
            assert "last batch error: " in out and "sanctions.yaml" in out
            assert "spool: 10 pending" in out
        finally:
            metrics_server.stop()
            d.close()
    assert main(["status", "--data-dir", str(cfg.data_dir)]) == 0  # without the flag: report only
    assert "daemon: not running" in capsys.readouterr().out


def _spool(data: Path, seen_at: datetime) -> None:
    with Store.open(data) as s:
        s.record_poll(FeedState("f"), fetched_at=seen_at, outcome="ok", status=200, error_kind=None, error=None,
                      duration_ms=1, items=[FeedItem("i1", "f", "g1", "https://e.org/1", "t", "", seen_at, seen_at)])


def test_status_fails_on_a_stale_spool_and_shows_the_last_successful_batch(tmp_path: Path, capsys) -> None:
    now = datetime.now(UTC)
    data = tmp_path / "fresh"
    _spool(data, now - timedelta(seconds=30))  # waiting less than ten batch intervals: fine
    assert main(["status", "--data-dir", str(data), "--fail-on-error"]) == 0
    assert "(stale" not in capsys.readouterr().out

    data = tmp_path / "stale"
    _spool(data, now - timedelta(hours=3))
    with Store.open(data) as s:
        s.load_batch("b0", [], now=now - timedelta(hours=5), runner="t", started_at=now - timedelta(hours=5))
    assert main(["status", "--data-dir", str(data), "--fail-on-error"]) == 1
    out = capsys.readouterr().out
    assert "batches: last succeeded " + (now - timedelta(hours=5)).strftime("%Y-%m-%d %H:%M") in out
    assert "spool: 1 pending, oldest ready for 3.0 h (stale: no batch for over 10 min)" in out
    assert "problems: the spool is stale" in out
    assert main(["status", "--data-dir", str(data), "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pipeline"]["problems"] == ["the spool is stale"] and doc["pipeline"]["pending"] == 1
