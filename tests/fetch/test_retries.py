"""What fetching remembers across restarts and batches, against loopback servers.

* A host-wide Retry-After hold is persisted: a fresh Daemon on the same data dir sends nothing to
  the held host before the hold ends.
* robots.txt unreachable (5xx, timeout) and transient page failures put the item back in the
  spool with a retry time instead of refusing it; after the cap of attempts it is given up with a
  dead letter. A permanent page error (404) is dead-lettered at once.

Each FaultServer sits on its own 127.0.0.x address, so each is its own host.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.fetch.http import HttpClient, HttpSettings
from pipeline.fetch.robots import RobotsCache
from pipeline.models import FeedItem
from pipeline.stages.download import RETRY, download_page
from pipeline.store import RetryPolicy
from tests.fetch.faultserver import FaultServer, Route
from tests.fetch.test_faults import T0, Clock, items_by_feed, make_daemon

SETTINGS = HttpSettings(allow_private_addresses=True, total_timeout=1.0, connect_timeout=1.0)


def page_item(srv: FaultServer, path: str) -> FeedItem:
    return FeedItem("i", "f", path, srv.url(path), "t", "", None, T0)


# -- download_page: which failures are worth another batch --------------------------------------


def test_robots_unreachable_means_retry_later_not_refused() -> None:
    with FaultServer("127.0.0.5") as srv, HttpClient(SETTINGS) as client:
        srv.status("/robots.txt", 503)
        page = download_page(page_item(srv, "/pages/a/1.html"), client, robots=RobotsCache(client))
        assert page.error_kind == RETRY and page.error.startswith("robots.txt unreachable")
        assert "http_5xx" in page.error
        assert srv.hits_for("/pages/a/1.html") == 0  # disallowed for now: the page is not requested
        # 4xx robots.txt: everything allowed; rules that disallow: refused for good.
        srv.status("/robots.txt", 404)
        assert download_page(page_item(srv, "/pages/a/1.html"), client, robots=RobotsCache(client)).error is None
        srv.body("/robots.txt", b"User-agent: *\nDisallow: /pages/\n", "text/plain")
        refused = download_page(page_item(srv, "/pages/a/1.html"), client, robots=RobotsCache(client))
        assert (refused.error_kind, refused.error) == ("refused", "robots.txt")


def test_transient_page_failure_is_retried_later_and_permanent_one_is_not() -> None:
    with FaultServer("127.0.0.5") as srv, HttpClient(SETTINGS) as client:
        srv.status("/pages/a/500.html", 500)
        srv.status("/pages/a/404.html", 404)
        sleeps: list[float] = []
        busy = download_page(page_item(srv, "/pages/a/500.html"), client, sleep=sleeps.append)
        assert busy.error_kind == RETRY and busy.error.startswith("http_5xx")
        assert srv.hits_for("/pages/a/500.html") == 3 and sleeps == [1.0, 2.0]  # quick retries first
        gone = download_page(page_item(srv, "/pages/a/404.html"), client, sleep=sleeps.append)
        assert gone.error_kind == "download_failed" and srv.hits_for("/pages/a/404.html") == 1


def test_pages_on_a_held_host_wait_for_the_hold_to_end() -> None:
    from datetime import UTC, datetime

    from pipeline.stages.download import _DownloadFn

    with FaultServer("127.0.0.5") as srv:
        srv.status("/robots.txt", 404)
        item = page_item(srv, "/pages/a/1.html")
        now = datetime.now(UTC)
        for until, expect_hits in ((now + timedelta(hours=1), 0), (now - timedelta(seconds=1), 1)):
            fn = _DownloadFn(SETTINGS, 2, held_hosts={"127.0.0.5": until})
            fn.setup()
            try:
                (page,) = list(fn.process([item]))
            finally:
                fn.teardown()
            assert srv.hits_for("/pages/a/1.html") == expect_hits
            if expect_hits == 0:
                assert page.error_kind == RETRY and "held until" in (page.error or "")
            else:
                assert page.error is None


# -- the daemon ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_host_hold_is_honoured_by_a_fresh_daemon_after_a_restart(tmp_path: Path) -> None:
    with FaultServer("127.0.0.6") as busy, FaultServer("127.0.0.7") as srv:
        busy.status("/throttled.xml", 429, retry_after="3600")
        busy.feed("/neighbour.xml")
        srv.feed("/ok.xml")
        feeds = [
            ("throttled", busy.url("/throttled.xml")),  # first: workers=1 polls in this order
            ("neighbour", busy.url("/neighbour.xml")),
            ("ok", srv.url("/ok.xml")),
        ]
        clock = Clock(T0)
        first = make_daemon(tmp_path, feeds, clock, workers=1)
        try:
            first.poll()
            assert busy.hits_for("/throttled.xml") == 1 and busy.hits_for("/neighbour.xml") == 0
        finally:
            first.close()

        clock.now = T0 + timedelta(minutes=30)
        second = make_daemon(tmp_path, feeds, clock, workers=1)  # the same data dir: a restart
        try:
            assert second.hosts.held(clock.now) == {"127.0.0.6": T0 + timedelta(hours=1)}
            summary = second.poll(force=True)
            assert busy.hits_for("/throttled.xml") == 1 and busy.hits_for("/neighbour.xml") == 0
            assert summary.host_backoff == 2 and srv.hits_for("/ok.xml") == 2  # other hosts as usual

            busy.set_route("/throttled.xml", Route("status", {"code": 200, "retry_after": None}))
            busy.feed("/throttled.xml")
            clock.now = T0 + timedelta(minutes=61)
            second.poll(force=True)
            assert busy.hits_for("/throttled.xml") == 2 and busy.hits_for("/neighbour.xml") == 1
            assert items_by_feed(second) == {"ok": 2, "neighbour": 2, "throttled": 2}
            assert second.store.scalar("SELECT count(*) FROM host_holds") == 0  # expired: deleted
        finally:
            second.close()


@pytest.mark.slow
def test_unreachable_robots_and_failed_pages_are_retried_then_dead_lettered(tmp_path: Path) -> None:
    with (
        FaultServer("127.0.0.8") as flaky,  # robots.txt 503 for good
        FaultServer("127.0.0.9") as healing,  # robots.txt 503, then back
        FaultServer("127.0.0.10") as plain,  # robots.txt 404: allow all
    ):
        flaky.feed("/flaky.xml", items=2)
        flaky.status("/robots.txt", 503)
        healing.feed("/healing.xml", items=1)
        healing.status("/robots.txt", 503)
        plain.feed("/plain.xml", items=2)
        plain.status("/pages/plain/1.html", 404)
        clock = Clock(T0)
        feeds = [("flaky", flaky.url("/flaky.xml")), ("healing", healing.url("/healing.xml")),
                 ("plain", plain.url("/plain.xml"))]
        daemon = make_daemon(tmp_path, feeds, clock, workers=2)
        daemon.item_retry = RetryPolicy(max_attempts=2, base_delay=timedelta(minutes=10))
        try:
            daemon.poll()
            assert items_by_feed(daemon) == {"flaky": 2, "healing": 1, "plain": 2}

            first = daemon.batch()
            assert first is not None
            assert first.dispositions == {"retry": 3, "download_failed": 1, "stored": 1}
            assert first.dead_letters == 1  # the 404 page: permanent, given up at once
            assert flaky.hits_for("/pages/flaky/1.html") == 0 and healing.hits_for("/pages/healing/1.html") == 0
            _, rows = daemon.store.query(
                "SELECT feed_id, disposition, attempts, retry_at FROM items WHERE feed_id <> 'plain' ORDER BY item_id")
            assert {(r[1], r[2], r[3]) for r in rows} == {("pending", 1, T0 + timedelta(minutes=10))}
            assert daemon.batch() is None  # nothing due yet: the retries wait for their time

            healing.status("/robots.txt", 404)
            clock.now = T0 + timedelta(minutes=11)
            second = daemon.batch()
            assert second is not None
            assert second.dispositions == {"stored": 1, "download_failed": 2} and second.dead_letters == 2
            assert healing.hits_for("/pages/healing/1.html") == 1 and flaky.hits_for("/pages/flaky/1.html") == 0
            assert daemon.store.scalar("SELECT count(*) FROM items WHERE disposition = 'pending'") == 0
            _, dead = daemon.store.query("SELECT feed_id, stage, reason, attempts FROM dead_letters ORDER BY 1, 3")
            assert dead == [
                ("flaky", "download", "retries_exhausted", 2),
                ("flaky", "download", "retries_exhausted", 2),
                ("plain", "download", "permanent_error", 1),
            ]
            _, errors = daemon.store.query("SELECT error FROM dead_letters WHERE feed_id = 'flaky'")
            assert all("robots.txt unreachable" in e[0] for e in errors)
        finally:
            daemon.close()
