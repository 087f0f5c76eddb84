"""The daemon process: scheduled cycle, then a graceful stop on SIGTERM within a bounded time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.demo import DemoServer
from tests.alert.servers import free_port

pytestmark = pytest.mark.slow


def test_run_polls_on_schedule_and_stops_on_sigterm(tmp_path: Path) -> None:
    with DemoServer() as server:
        sources = tmp_path / "sources.yaml"
        sources.write_text(server.sources_yaml(), encoding="utf-8")
        settings = tmp_path / "newsmon.yaml"
        settings.write_text(
            "fetch:\n  allow_private_addresses: true\n  per_host_min_gap_seconds: 0\n"
            "pipeline:\n  batch_interval_seconds: 2\n  poll_tick_seconds: 5\n"
            # No group wait: the alert goes out in the first alert run after its batch.
            "alerts:\n  interval_seconds: 2\n  timing:\n    group_wait_seconds: 0\n"
            f"metrics_port: {free_port()}\n",
            encoding="utf-8",
        )
        data = tmp_path / "data"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", "--config", str(settings), "--sources", str(sources),
             "--data-dir", str(data), "-v"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            # Wait until the scheduled jobs have stored articles and sent the alerts (to the console).
            deadline = time.monotonic() + 120
            done = False
            while time.monotonic() < deadline and not done:
                time.sleep(1)
                q = subprocess.run(
                    [sys.executable, "-m", "pipeline.cli", "query", "--data-dir", str(data), "--format", "json",
                     "SELECT (SELECT count(*) FROM items WHERE disposition = 'pending') AS pending, "
                     "(SELECT count(*) FROM items) AS items, "
                     "(SELECT count(*) FROM alert_deliveries WHERE status = 'sent') AS sent"],
                    capture_output=True, text=True, timeout=60,
                )
                if q.returncode == 0:
                    row = json.loads(q.stdout)
                    done = row["items"] == 10 and row["pending"] == 0 and row["sent"] > 0
            assert done, "the daemon did not finish a cycle in time"
            port = int(settings.read_text().split("metrics_port: ")[1])
            health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())
            assert health["status"] == "ok"
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            assert 'newsmon_fetches_total{outcome="ok"} 5.0' in metrics
            assert 'newsmon_items_total{disposition="stored"}' in metrics
            assert "newsmon_queue_depth 0.0" in metrics
            assert 'newsmon_alert_deliveries_total{channel="console",outcome="sent"}' in metrics
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            assert time.monotonic() - t0 < 45
            assert proc.returncode == 0, err[-2000:]
            assert "daemon_stopped" in err
            # -v logs our decisions, not Beam's type-hint conversions (a third of the log before)
            assert "type hint" not in err and " INFO apache_beam" not in err
            assert "batch_loaded" in err and "feed_polled" in err
            assert "newsmon alert: topic" in out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_daemon_says_it_started_without_v_and_logs_a_failing_batch_once(tmp_path: Path) -> None:
    """By default the daemon logged nothing at start: the journal could not tell it was up."""
    from tests.fetch.faultserver import FaultServer

    with FaultServer("127.0.0.14") as srv:
        srv.feed("/f.xml")
        sources = tmp_path / "sources.yaml"
        sources.write_text(f"feeds:\n  - id: f\n    url: {srv.url('/f.xml')}\n", encoding="utf-8")
        settings = tmp_path / "newsmon.yaml"
        port = free_port()
        settings.write_text("fetch:\n  allow_networks: [127.0.0.14/32]\npipeline:\n  poll_tick_seconds: 600\n"
                            f"metrics_port: {port}\nmetrics_host: 127.0.0.3\n", encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", "--config", str(settings), "--sources", str(sources),
             "--data-dir", str(tmp_path / "data")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stderr is not None
            seen = []
            while not any("daemon_started" in line for line in seen) and len(seen) < 50:
                line = proc.stderr.readline()  # blocks until a log line; the process's end gives ""
                if not line:
                    break
                seen.append(line)
            first = next((line for line in seen if "daemon_started" in line), "".join(seen))
            assert "daemon_started" in first and "feeds=1" in first and f"data_dir={tmp_path / 'data'}" in first
            # the metrics bind where metrics_host says (0.0.0.0 in a container), not always loopback 127.0.0.1
            assert f"metrics_listening address=127.0.0.3:{port}" in "".join(seen)
            try:
                status = urllib.request.urlopen(f"http://127.0.0.3:{port}/healthz", timeout=30).status
            except urllib.error.HTTPError as e:
                status = e.code
            assert status in (200, 503)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert "daemon_stopped" in err and "feed_polled" not in err  # decisions stay at -v
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
