"""Prometheus metrics and a health endpoint, served on a local port.

    GET /metrics   Prometheus text format
    GET /healthz   200 {"status": "ok", ...} while the jobs keep working; 503 with
                   "stale"    the poll or the batch job has not completed for `stale_after` seconds
                              (a stuck scheduler, a batch that hangs), or
                   "failing"  the last FAILING_AFTER batches in a row raised (a broken topic file,
                              a full disk): items pile up in the spool while the daemon looks alive,
                   so a supervisor or a probe notices. The body names the last successful batch.

Each `Metrics` owns its registry (no process-global state), so several daemons in one test
process do not collide. The server binds to 127.0.0.1 by default (`metrics_host` in the
settings): metrics are for a local agent or a reverse proxy, not for the open network.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# A batch may fail once for a passing reason (a crash being bisected, a busy disk); this many in a
# row means the pipeline is broken and nothing gets through.
FAILING_AFTER = 3


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetches = Counter("newsmon_fetches_total", "Feed fetches by outcome", ["outcome"], registry=r)
        self.fetch_errors = Counter("newsmon_fetch_errors_total", "Feed fetch errors by class", ["kind"], registry=r)
        self.items = Counter("newsmon_items_total", "Feed items by final disposition", ["disposition"], registry=r)
        self.new_items = Counter("newsmon_new_items_total", "New feed items written to the spool", registry=r)
        self.batch_seconds = Histogram(
            "newsmon_batch_duration_seconds", "Duration of a Beam batch including the load",
            buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800), registry=r,
        )
        self.queue_depth = Gauge("newsmon_queue_depth", "Feed items pending in the spool", registry=r)
        self.story_index_articles = Gauge(
            "newsmon_story_index_articles", "Articles in the story index kept between batches (0: none kept)", registry=r
        )
        self.story_index_load_seconds = Gauge(
            "newsmon_story_index_load_seconds", "How long the last build of the kept story index from the store took", registry=r
        )
        self.alerts = Counter("newsmon_alerts_total", "Alerts raised (one per topic and story)", registry=r)
        self.deliveries = Counter(
            "newsmon_alert_deliveries_total", "Alert delivery attempts by channel and outcome", ["channel", "outcome"], registry=r
        )
        self.job_failures = Counter("newsmon_job_failures_total", "Scheduler jobs that raised", ["job"], registry=r)
        self.last_success = Gauge(
            "newsmon_job_last_success_timestamp_seconds", "When each job last completed", ["job"], registry=r
        )
        self.batch_failures_in_row = Gauge(
            "newsmon_batch_failures_in_row", "Batch jobs that raised since the last one that completed", registry=r
        )
        # The store's fragmentation (pipeline/store/maintenance.py), refreshed after each
        # maintenance run and at start: what grows between runs and what a run brings back down.
        self.store_files = Gauge("newsmon_store_files", "Live Parquet data files in the lake", registry=r)
        self.store_files_on_disk = Gauge(
            "newsmon_store_files_on_disk", "Data and delete files the catalog tracks, live or awaiting cleanup", registry=r
        )
        self.store_snapshots = Gauge("newsmon_store_snapshots", "DuckLake snapshots kept (time travel)", registry=r)
        self.store_inlined_rows = Gauge(
            "newsmon_store_inlined_rows", "Rows held in the catalog instead of Parquet (small inserts)", registry=r
        )
        self.store_catalog_bytes = Gauge("newsmon_store_catalog_bytes", "Size of catalog.sqlite", registry=r)
        self.maintenance_seconds = Gauge(
            "newsmon_maintenance_duration_seconds", "How long the last store maintenance run took", registry=r
        )
        self.maintenance_runs = Counter(
            "newsmon_maintenance_runs_total", "Store maintenance runs by result (ok, step_failed)", ["result"], registry=r
        )
        self._last_ok: dict[str, float] = {}
        self._batch_streak = 0
        self._batch_error: str | None = None
        self._lock = threading.Lock()

    def observe_store(self, health: Any) -> None:
        """Set the store gauges from a `pipeline.store.maintenance.StoreHealth`."""
        self.store_files.set(health.files)
        self.store_files_on_disk.set(health.files_on_disk)
        self.store_snapshots.set(health.snapshots)
        self.store_inlined_rows.set(health.inlined_rows)
        self.store_catalog_bytes.set(health.catalog_bytes)

    def job_done(self, job: str, when: float | None = None) -> None:
        when = time.time() if when is None else when
        with self._lock:
            self._last_ok[job] = when
            if job == "batch":
                self._batch_streak, self._batch_error = 0, None
        self.last_success.labels(job).set(when)
        if job == "batch":
            self.batch_failures_in_row.set(0)

    def job_failed(self, job: str, error: str) -> int:
        """Count a failed run of `job`; returns how many batch runs failed in a row (0 for others)."""
        self.job_failures.labels(job).inc()
        if job != "batch":
            return 0
        with self._lock:
            self._batch_streak += 1
            self._batch_error = error
            streak = self._batch_streak
        self.batch_failures_in_row.set(streak)
        return streak

    def batch_failures(self) -> tuple[int, str | None]:
        with self._lock:
            return self._batch_streak, self._batch_error

    def last_ok(self, job: str) -> float | None:
        with self._lock:
            return self._last_ok.get(job)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """Serves /metrics and /healthz from a daemon thread."""

    def __init__(
        self,
        metrics: Metrics,
        port: int,
        *,
        host: str = "127.0.0.1",
        stale_after: float = 600.0,
        extra_health: Callable[[], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.stale_after = stale_after
        self.clock = clock
        self.started = clock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, outer.metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    status, body = outer.health(extra_health() if extra_health else {})
                    self._send(status, json.dumps(body).encode(), "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # scrapes every few seconds are not news
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def health(self, extra: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = self.clock()
        since: dict[str, float | None] = {}
        stale: list[str] = []
        for job in ("poll", "batch"):
            last = self.metrics.last_ok(job)
            since[job] = None if last is None else round(now - last, 1)
            if now - (last if last is not None else self.started) > self.stale_after:
                stale.append(job)
        failures, error = self.metrics.batch_failures()
        last_batch = self.metrics.last_ok("batch")
        status = "failing" if failures >= FAILING_AFTER else "stale" if stale else "ok"
        body = {
            "status": status,
            "stale_jobs": stale,
            "seconds_since_poll": since["poll"],
            "seconds_since_batch": since["batch"],
            "last_batch_ok_at": None if last_batch is None else datetime.fromtimestamp(last_batch, UTC).isoformat(timespec="seconds"),
            "batch_failures_in_row": failures,
            "last_batch_error": error,
            **extra,
        }
        return (200 if status == "ok" else 503), body

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
