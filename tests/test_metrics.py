"""The metrics and health endpoint on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from pipeline.metrics import Metrics, MetricsServer


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_health_turns_503_when_the_poll_job_stops_completing() -> None:
    # An injected clock, not sleeps: on a loaded machine a 0.5 s budget was met by chance.
    now = [1_000_000.0]
    m = Metrics()
    server = MetricsServer(m, 0, stale_after=600, clock=lambda: now[0]).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        m.job_done("poll", when=now[0])
        m.job_done("batch", when=now[0])
        status, body = get(base + "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        now[0] += 601
        m.job_done("batch", when=now[0])
        status, body = get(base + "/healthz")
        assert status == 503 and json.loads(body)["status"] == "stale" and json.loads(body)["stale_jobs"] == ["poll"]
        m.fetches.labels("ok").inc(3)
        status, body = get(base + "/metrics")
        assert status == 200 and b'newsmon_fetches_total{outcome="ok"} 3.0' in body
        assert get(base + "/nothing")[0] == 404
    finally:
        server.stop()


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.alerts.inc()
    assert b"newsmon_alerts_total 1.0" in a.exposition()
    assert b"newsmon_alerts_total 0.0" in b.exposition()
