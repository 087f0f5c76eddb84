"""poll_feed state rules, host backoff, robots.txt: in memory, through httpx.MockTransport."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pipeline.config import Source
from pipeline.fetch.hosts import HostBackoff, host_of
from pipeline.fetch.http import HttpClient, HttpSettings
from pipeline.fetch.poll import (
    DEFAULT_POLICY,
    PollPolicy,
    adapt_interval,
    header_hint_minutes,
    poll_feed,
)
from pipeline.fetch.robots import RobotsCache
from pipeline.models import FeedItem, FeedState
from pipeline.stages.download import download_page

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FEED_URL = "http://feeds.example.org/rss.xml"
SOURCE = Source(id="f", url=FEED_URL, interval_minutes=15)


def rss(n_items: int, channel_extra: str = "") -> bytes:
    items = "".join(
        f"<item><title>t{i}</title><link>http://feeds.example.org/a/{i}</link></item>" for i in range(n_items)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>{channel_extra}{items}</channel></rss>'.encode()


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> HttpClient:
    return HttpClient(HttpSettings(allow_private_addresses=True), transport=httpx.MockTransport(handler))


class FakeServer:
    """One feed: `body`, an ETag; `liar` answers 304 to every conditional request."""

    def __init__(self, body: bytes, *, liar: bool = False, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.liar = liar
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []
        self.status: int | None = None  # forced status
        self.status_headers: dict[str, str] = {}

    def etag(self) -> str:
        return f'"{hashlib.sha1(self.body).hexdigest()[:12]}"' if not self.liar else '"same"'

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status is not None:
            return httpx.Response(self.status, headers=self.status_headers, content=b"x")
        inm = request.headers.get("if-none-match")
        headers = {"etag": self.etag(), "content-type": "application/rss+xml", **self.headers}
        if inm is not None and (self.liar or inm == self.etag()):
            return httpx.Response(304, headers=headers)
        return httpx.Response(200, headers=headers, content=self.body)


def poll(server: FakeServer, state: FeedState | None, now: datetime, **kw):
    with client_for(server) as client:
        return poll_feed(SOURCE, state, client, now=now, rng=random.Random(7), **kw)


# -- interval -----------------------------------------------------------------------------------


def test_header_hints() -> None:
    assert header_hint_minutes({"cache-control": "public, max-age=3600"}, NOW) == 60
    assert header_hint_minutes({"cache-control": "no-cache, max-age=3600"}, NOW) is None
    expires = {"expires": "Mon, 02 Mar 2026 14:00:00 GMT", "date": "Mon, 02 Mar 2026 12:00:00 GMT"}
    assert header_hint_minutes(expires, NOW) == 120
    assert header_hint_minutes({"expires": "0"}, NOW) is None
    assert header_hint_minutes({}, NOW) is None


def test_interval_bounds_and_hints() -> None:
    assert adapt_interval(SOURCE, 0, None) == timedelta(minutes=15)
    # a hint faster than the configured interval never speeds polling up
    assert adapt_interval(SOURCE, 0, 1) == timedelta(minutes=15)
    assert adapt_interval(SOURCE, 0, 120) == timedelta(minutes=120)
    # a hint may go past max_interval, up to max_hint_interval
    assert adapt_interval(SOURCE, 0, 10 * 24 * 60) == DEFAULT_POLICY.max_hint_interval
    # the 5-minute floor applies to a feed configured faster
    fast = Source(id="fast", url=FEED_URL, interval_minutes=1)
    assert adapt_interval(fast, 0, None) == timedelta(minutes=5)
    # idle feeds stretch gradually, up to max_interval
    steps = [adapt_interval(SOURCE, n, None) for n in range(0, 40)]
    assert steps[DEFAULT_POLICY.idle_grace] == timedelta(minutes=15)
    assert steps[DEFAULT_POLICY.idle_grace + 1] == timedelta(minutes=22.5)
    assert steps == sorted(steps) and steps[-1] == DEFAULT_POLICY.max_interval


def test_ttl_and_cache_control_slow_the_feed_down() -> None:
    server = FakeServer(rss(2, "<ttl>90</ttl>"))
    res = poll(server, None, NOW)
    assert res.state.feed_hint_minutes == 90 and res.state.interval_minutes == 90
    server.headers = {"cache-control": "max-age=10800"}
    res = poll(server, res.state, NOW + timedelta(hours=2))  # 304: the stored ttl and the header
    assert res.outcome == "not_modified" and res.state.interval_minutes == 180


def test_idle_feed_backs_off_and_speeds_up_with_news() -> None:
    server = FakeServer(rss(2))
    state = poll(server, None, NOW).state
    now = NOW
    for _ in range(12):
        now += timedelta(hours=7)
        state = poll(server, state, now, policy=replace_policy(self_check_every=1000)).state
    assert state.interval_minutes > 60
    slow = state.interval_minutes
    n = 2
    for _ in range(6):  # new items at every poll
        n += 1
        server.body = rss(n)
        now += timedelta(hours=7)
        res = poll(server, state, now, known=lambda ids: set())
        assert res.new_items == n
        state = res.state
        assert state.interval_minutes <= slow
        slow = state.interval_minutes
    assert state.interval_minutes == 15


def test_jitter_spreads_feeds_configured_alike_and_never_polls_early() -> None:
    server = FakeServer(rss(1))
    dues = set()
    with client_for(server) as client:
        for seed in range(20):
            res = poll_feed(SOURCE, None, client, now=NOW, rng=random.Random(seed))
            wait = res.state.next_due_at - NOW
            assert timedelta(minutes=15) <= wait <= timedelta(minutes=15) * (1 + DEFAULT_POLICY.jitter)
            dues.add(res.state.next_due_at)
    assert len(dues) == 20


def replace_policy(**kw) -> PollPolicy:
    return replace(DEFAULT_POLICY, **kw)


# -- validators self-check ----------------------------------------------------------------------


def test_self_check_catches_a_lying_304() -> None:
    server = FakeServer(rss(2), liar=True)
    policy = replace_policy(self_check_every=3)
    state = poll(server, None, NOW, policy=policy).state
    server.body = rss(3)
    outcomes = []
    now = NOW
    for _ in range(3):
        now += timedelta(hours=1)
        res = poll(server, state, now, policy=policy)
        outcomes.append(res.outcome)
        state = res.state
    assert outcomes == ["not_modified", "not_modified", "ok"]
    assert res.self_checked and len(res.items) == 3
    assert state.validators_trusted is False
    before = len(server.requests)
    res = poll(server, state, now + timedelta(hours=1), policy=policy)
    assert res.outcome == "unchanged"
    assert len(server.requests) == before + 1
    assert "if-none-match" not in server.requests[-1].headers


def test_self_check_keeps_honest_validators() -> None:
    server = FakeServer(rss(2))
    policy = replace_policy(self_check_every=2)
    state = poll(server, None, NOW, policy=policy).state
    res = poll(server, state, NOW + timedelta(hours=1), policy=policy)
    assert res.outcome == "not_modified"
    res = poll(server, res.state, NOW + timedelta(hours=2), policy=policy)
    assert res.self_checked and res.outcome == "unchanged" and res.state.validators_trusted
    assert res.state.not_modified_count == 0


def test_self_check_runs_on_a_schedule() -> None:
    server = FakeServer(rss(2))
    state = poll(server, None, NOW).state
    res = poll(server, state, NOW + timedelta(hours=1))
    assert not res.self_checked
    res = poll(server, res.state, NOW + DEFAULT_POLICY.self_check_max_age)
    assert res.self_checked


def test_old_rows_with_null_politeness_columns_still_poll() -> None:
    server = FakeServer(rss(2))
    legacy = FeedState(feed_id="f", validators_trusted=None, not_modified_count=None, idle_polls=None,
                       permanent_streak=None, disabled=None)  # type: ignore[arg-type]
    res = poll(server, legacy, NOW)
    assert res.outcome == "ok" and res.state.validators_trusted is True


# -- errors -------------------------------------------------------------------------------------


def test_permanent_errors_disable_then_success_enables() -> None:
    server = FakeServer(rss(2))
    server.status = 404
    state = None
    now = NOW
    for n in range(1, 6):
        res = poll(server, state, now)
        state = res.state
        assert res.error_kind == "http_4xx" and state.permanent_streak == n
        assert state.disabled == (n == 5)
        now = state.next_due_at
    assert res.state.next_due_at - res.state.last_attempt_at >= DEFAULT_POLICY.disabled_retry
    # a transient error while disabled keeps the daily retry
    server.status = 500
    res = poll(server, state, state.next_due_at)
    assert res.state.disabled and res.state.next_due_at - res.state.last_attempt_at >= timedelta(days=1)
    server.status = None
    res = poll(server, res.state, res.state.next_due_at)
    assert res.outcome == "ok" and not res.state.disabled and res.state.permanent_streak == 0


def test_transient_errors_do_not_count_toward_disabling() -> None:
    server = FakeServer(rss(2))
    server.status = 503
    state = None
    for _ in range(8):
        state = poll(server, state, NOW).state
    assert state.error_streak == 8 and state.permanent_streak == 0 and not state.disabled


def test_retry_after_holds_the_host_and_is_capped() -> None:
    hosts = HostBackoff()
    server = FakeServer(rss(2))
    server.status = 429
    server.status_headers = {"retry-after": str(10 * 24 * 3600)}
    res = poll(server, None, NOW, hosts=hosts)
    assert res.error_kind == "http_429"
    assert res.state.next_due_at - NOW == DEFAULT_POLICY.max_retry_after
    assert hosts.not_before("feeds.example.org", NOW) == NOW + DEFAULT_POLICY.max_retry_after
    # another feed on the host: no request, next poll at the host's time
    other = Source(id="g", url="http://FEEDS.example.org:80/other.xml")
    before = len(server.requests)
    with client_for(server) as client:
        res = poll_feed(other, None, client, now=NOW + timedelta(hours=1), hosts=hosts)
    assert res.outcome == "host_backoff" and len(server.requests) == before
    assert res.state.next_due_at == NOW + DEFAULT_POLICY.max_retry_after
    assert res.state.last_attempt_at is None


def test_503_without_retry_after_does_not_hold_the_host() -> None:
    hosts = HostBackoff()
    server = FakeServer(rss(2))
    server.status = 503
    poll(server, None, NOW, hosts=hosts)
    assert hosts.held(NOW) == {}


def test_host_backoff_map() -> None:
    hosts = HostBackoff(max_backoff=timedelta(hours=1))
    assert host_of("https://News.Example.org:8443/x") == "news.example.org"
    assert host_of("http://[::1]:8080/") == "::1"
    hosts.block("a", NOW + timedelta(minutes=30))
    hosts.block("a", NOW + timedelta(minutes=10))  # an earlier time never shortens the hold
    assert hosts.not_before("a", NOW) == NOW + timedelta(minutes=30)
    assert hosts.block("b", NOW + timedelta(days=3), now=NOW) == NOW + timedelta(hours=1)
    assert hosts.not_before("a", NOW + timedelta(minutes=30)) is None
    assert hosts.held(NOW) == {"b": NOW + timedelta(hours=1)}

    def hammer() -> None:
        for i in range(200):
            hosts.block(f"h{i % 7}", NOW + timedelta(seconds=i), now=NOW)
            hosts.not_before(f"h{i % 5}", NOW)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hosts.not_before("h0", NOW) == NOW + timedelta(seconds=196)


# -- robots.txt ---------------------------------------------------------------------------------


class RobotsSite:
    def __init__(self, robots: tuple[int, bytes]) -> None:
        self.robots = robots
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == "/robots.txt":
            status, body = self.robots
            return httpx.Response(status, content=body, headers={"content-type": "text/plain"})
        return httpx.Response(200, content=b"<html><body>page</body></html>", headers={"content-type": "text/html"})


ROBOTS = b"User-agent: otherbot\nDisallow: /world/\n\nUser-agent: *\nDisallow: /private/\n"


def item(url: str, feed_id: str = "f") -> FeedItem:
    return FeedItem("i", feed_id, url, url, "t", "", None, NOW)


def test_robots_rules_are_honoured_and_cached() -> None:
    site = RobotsSite((200, ROBOTS))
    with client_for(site) as client:
        robots = RobotsCache(client)
        assert robots.allowed("http://news.example.org/world/1.html")
        assert not robots.allowed("http://news.example.org/private/2.html")
        assert robots.allowed("http://news.example.org/other/3.html")
        assert robots.fetches == 1 and site.paths == ["/robots.txt"]
        page = download_page(item("http://news.example.org/private/2.html"), client, robots=robots)
        assert page.error_kind == "refused" and page.error == "robots.txt"
        assert "/private/2.html" not in site.paths
        ok = download_page(item("http://news.example.org/world/1.html"), client, robots=robots)
        assert ok.error is None and ok.html


def test_robots_group_naming_newsmon_wins() -> None:
    rules = b"User-agent: *\nDisallow: /\n\nUser-agent: newsmon\nDisallow: /drafts/\n"
    with client_for(RobotsSite((200, rules))) as client:
        robots = RobotsCache(client)
        assert robots.allowed("http://a.example.org/world/1.html")
        assert not robots.allowed("http://a.example.org/drafts/1.html")


def test_robots_cache_expires() -> None:
    t = [0.0]
    site = RobotsSite((200, ROBOTS))
    with client_for(site) as client:
        robots = RobotsCache(client, clock=lambda: t[0])
        robots.allowed("http://a.example.org/x")
        t[0] += 23 * 3600
        robots.allowed("http://a.example.org/y")
        assert robots.fetches == 1
        t[0] += 2 * 3600
        robots.allowed("http://a.example.org/z")
        robots.allowed("https://a.example.org/z")  # another origin
        assert robots.fetches == 3


@pytest.mark.parametrize(
    ("status", "allowed"), [(404, True), (410, True), (403, True), (500, False), (503, False), (429, False)]
)
def test_robots_status_rules(status: int, allowed: bool) -> None:
    with client_for(RobotsSite((status, b"User-agent: *\nDisallow: /\n"))) as client:
        assert RobotsCache(client).allowed("http://a.example.org/page") is allowed


def test_robots_unreachable_disallows_for_a_shorter_time() -> None:
    t = [0.0]
    site = RobotsSite((503, b""))
    with client_for(site) as client:
        robots = RobotsCache(client, clock=lambda: t[0])
        assert not robots.allowed("http://a.example.org/p")
        site.robots = (200, b"")
        t[0] += robots.error_ttl + 1
        assert robots.allowed("http://a.example.org/p")


def test_robots_body_is_capped() -> None:
    big = ROBOTS + b"#" * 100 + b"\nUser-agent: *\nDisallow: /late/\n"
    with client_for(RobotsSite((200, big))) as client:
        robots = RobotsCache(client, max_bytes=len(ROBOTS) + 50)
        assert robots.allowed("http://a.example.org/late/1")  # the rule past the cap is ignored


def test_robots_opt_out_feed_skips_the_check() -> None:
    site = RobotsSite((200, b"User-agent: *\nDisallow: /\n"))
    with client_for(site) as client:
        robots = RobotsCache(client)
        refused = download_page(item("http://a.example.org/p", "strict"), client, robots=robots)
        fetched = download_page(item("http://a.example.org/p", "optout"), client, robots=None)
        assert refused.error == "robots.txt" and fetched.error is None
