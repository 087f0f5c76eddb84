"""The alert lifecycle against the loopback Slack stand-in and a real SMTP server: group wait,
thread replies with chat.update and reply_broadcast, email follow-ups in the thread, routing,
silences, quiet hours, digests, rate limits and Retry-After, health alerts to the ops route."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.alert.health import pipeline_checks
from pipeline.alert.notifiers import EmailNotifier, SlackApiNotifier, SlackWebhookNotifier
from pipeline.alert.ratelimit import ChannelLimiter
from pipeline.alert.routes import Route
from pipeline.alert.silences import Silence, add_silence, expire_silence, new_silence_id
from pipeline.config import AlertTimingConfig, HealthAlertsConfig, QuietHoursConfig, RouteMatchConfig, Source
from pipeline.health import write_health
from tests.alert.alert_world import AlertWorld
from tests.alert.servers import SlackApiServer, SlackFaults, SmtpTestServer, WebhookReceiver

# In the past: Slack's ts are real time, and a lookup in the channel starts at the claim's time.
START = (datetime.now(UTC) - timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
SPORT, OPS, DIGEST = "C0SPORT", "C0OPS", "C0DIGEST"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[AlertWorld]:
    w = AlertWorld(tmp_path / "data", START, feeds=[
        Source(id="f1", url="https://example.org/f1.xml", tags=("world",)),
        Source(id="f2", url="https://example.org/f2.xml", tags=("sport",)),
    ])
    yield w
    w.close()


@pytest.fixture
def slack() -> Iterator[SlackApiServer]:
    with SlackApiServer(channels=(SPORT, OPS, DIGEST)) as server:
        yield server


def api(server: SlackApiServer, channel: str = SlackApiServer.CHANNEL, route: str = "default") -> SlackApiNotifier:
    return SlackApiNotifier(server.TOKEN, channel, api_url=server.api_url, timeout=1, route=route)


def top_level(server: SlackApiServer, channel: str = SlackApiServer.CHANNEL) -> list[dict]:
    return [m for m in server.messages if m["channel"] == channel and not m.get("thread_ts")]


# -- group wait, replies, updates ------------------------------------------------------------------


def test_the_first_alert_waits_for_copies_then_shows_them(world: AlertWorld, slack: SlackApiServer) -> None:
    engine = world.engine([Route("default", [api(slack)])], AlertTimingConfig(group_wait_seconds=120))
    world.copies("s1", ["bbc"])
    world.advance(seconds=30)
    assert engine.run().held_group_wait == 1 and slack.messages == []  # still waiting
    world.copies("s1", ["ap", "reuters"])  # copies fold into the story meanwhile
    world.advance(seconds=100)
    s = engine.run()
    assert s.sent == 1
    (msg,) = slack.messages
    assert "bbc, ap, reuters" in msg["blocks"][2]["elements"][0]["text"]
    assert "mute this story" in msg["blocks"][-1]["elements"][-1]["text"]
    assert "newsmon silence add --story s1 --topic sanctions" in msg["blocks"][-1]["elements"][-1]["text"]
    (first,) = world.log("first")
    assert (first["outlets"], first["copies"], first["receipt"], first["status"]) == (3, 3, msg["ts"], "sent")
    assert engine.run().sent == 0 and len(slack.messages) == 1  # never twice


def test_later_copies_become_batched_thread_replies_and_update_the_parent(world: AlertWorld, slack: SlackApiServer) -> None:
    timing = AlertTimingConfig(group_wait_seconds=0, reply_interval_seconds=300, spread_outlets=5, spread_minutes=30)
    engine = world.engine([Route("default", [api(slack)])], timing)
    world.copies("s1", ["bbc"])
    assert engine.run().sent == 1
    parent = slack.messages[0]
    world.advance(minutes=1)
    world.copies("s1", ["ap"])
    world.advance(minutes=1)
    world.copies("s1", ["afp"])
    assert engine.run().replies == 0  # within the reply interval: batched, not one reply per copy
    world.advance(minutes=4)
    s = engine.run()
    assert (s.replies, s.updates) == (1, 1)
    (reply,) = slack.replies()
    assert reply["thread_ts"] == parent["ts"] and not reply["reply_broadcast"]
    assert reply["text"].startswith("+2 outlets: ap, afp (3 outlets, 3 copies in all)")
    (upd,) = slack.updates
    assert upd["ts"] == parent["ts"] and "bbc, ap, afp" in upd["blocks"][2]["elements"][0]["text"]

    # Five new outlets within 30 minutes: that reply is broadcast to the channel, once per story.
    world.advance(minutes=10)
    world.copies("s1", ["o1", "o2", "o3", "o4", "o5"])
    world.advance(minutes=6)
    assert engine.run().replies == 1
    world.advance(minutes=1)
    world.copies("s1", ["o6", "o7", "o8", "o9", "o10"])
    world.advance(minutes=6)
    assert engine.run().replies == 1
    replies = slack.replies()
    assert [r["reply_broadcast"] for r in replies] == [False, True, False]
    assert [r["metadata"]["event_payload"]["seq"] for r in replies] == [1, 2, 3]
    assert len(top_level(slack)) == 1  # still one alert: the story grew in its thread
    assert "13 outlets" in slack.updates[-1]["blocks"][-1]["elements"][0]["text"]


def test_a_webhook_cannot_thread_so_it_sends_the_first_alert_only(world: AlertWorld, caplog) -> None:
    caplog.set_level(logging.INFO, logger="newsmon.alert")
    with WebhookReceiver() as hook:
        engine = world.engine([Route("default", [SlackWebhookNotifier(hook.url, timeout=5)])],
                              AlertTimingConfig(group_wait_seconds=0, reply_interval_seconds=0))
        assert "slack_webhook_no_threads" in caplog.text
        world.copies("s1", ["bbc"])
        assert engine.run().sent == 1
        world.advance(minutes=30)
        world.copies("s1", ["ap", "afp"])
        world.advance(minutes=30)
        s = engine.run()
        assert (s.sent, s.replies, s.updates) == (0, 0, 0) and len(hook.posts) == 1


def test_a_webhook_429_holds_it_across_restarts(world: AlertWorld) -> None:
    timing = AlertTimingConfig(group_wait_seconds=0)
    with WebhookReceiver() as hook:
        engine = world.engine([Route("default", [SlackWebhookNotifier(hook.url, timeout=5)])], timing)
        world.copies("s1", ["bbc"])
        world.copies("s2", ["ap"])
        hook.answer_rate_limited(retry_after=600)
        assert engine.run().sent == 0 and len(hook.posts) == 1  # the 429 stops the webhook for this run
        hook.answer_ok()
        world.advance(minutes=2)  # the failed alert's own retry time has come; the hold has not ended
        restarted = world.engine([Route("default", [SlackWebhookNotifier(hook.url, timeout=5)])], timing)
        assert restarted.run().sent == 0 and len(hook.posts) == 1  # a new process: the stored hold binds
        _, rows = world.store.query("SELECT channel FROM alert_channel_holds")
        assert rows and all(r[0].startswith("hook:") and hook.SECRET not in r[0] for r in rows)
        other = world.engine([Route("default", [SlackWebhookNotifier(hook.url_for("/services/T1/B1/other"), timeout=5)])],
                             timing)
        assert other.limiter.held(other._slack_id(other.routes[0].notifiers[0])) == 0  # another webhook is free


def test_email_follow_ups_thread_under_the_alert_at_most_once_per_interval(world: AlertWorld, tmp_path: Path) -> None:
    with SmtpTestServer(tmp_path / "smtp") as smtp:
        mail = EmailNotifier(smtp.host, smtp.port, "newsmon@example.org", ("desk@example.org",), username=smtp.USERNAME,
                             password=smtp.PASSWORD, ssl_context=smtp.client_ssl_context(), local_hostname="localhost")
        engine = world.engine([Route("default", [mail])], AlertTimingConfig(group_wait_seconds=0, email_followup_minutes=60))
        world.copies("s1", ["bbc"])
        assert engine.run().sent == 1
        first = smtp.messages[0].message
        world.advance(minutes=10)
        world.copies("s1", ["ap"])
        world.advance(minutes=10)
        assert engine.run().replies == 0  # the first mail is 20 minutes old: not yet
        world.advance(minutes=45)
        world.copies("s1", ["afp"])
        assert engine.run().replies == 1
        world.advance(minutes=10)
        world.copies("s1", ["dpa"])
        assert engine.run().replies == 0  # one follow-up per interval
        world.advance(minutes=60)
        assert engine.run().replies == 1
        f1, f2 = (m.message for m in smtp.messages[1:])
        assert f1["In-Reply-To"] == first["Message-ID"] and first["Message-ID"] in f1["References"]
        assert f2["In-Reply-To"] == first["Message-ID"]
        assert f1["Subject"].startswith("Re: [newsmon] sanctions:") and f1["Message-ID"] != f2["Message-ID"]
        assert "+2 outlets: ap, afp" in f1.get_content() and "+1 outlet: dpa" in f2.get_content()


# -- routing, silences, quiet hours, digests -------------------------------------------------------


def test_routes_match_topic_score_outlet_and_feed_tag(world: AlertWorld, slack: SlackApiServer) -> None:
    routes = [
        Route("default", [api(slack)]),
        Route("sport", [api(slack, SPORT, "sport")], match=RouteMatchConfig(feed_tags=("sport",))),
        Route("urgent", [api(slack, DIGEST, "urgent")], match=RouteMatchConfig(topics=("ultimatum",), min_score=0.9),
              continue_matching=True),
        Route("wire", [api(slack, OPS, "wire")], match=RouteMatchConfig(outlets=("reuters",))),
    ]
    engine = world.engine(routes, AlertTimingConfig(group_wait_seconds=0))
    world.copies("s-sport", ["espn"], feed="f2")
    world.copies("s-urgent", ["reuters"], topic="ultimatum", score=0.95)
    world.copies("s-mild", ["bbc"], topic="ultimatum", score=0.6)
    world.copies("s-wire", ["reuters"])
    engine.run()

    def stories(channel: str) -> list[str]:
        return sorted(m["metadata"]["event_payload"]["story_id"] for m in top_level(slack, channel))

    assert stories(SPORT) == ["s-sport"]
    assert stories(DIGEST) == ["s-urgent"]
    assert stories(OPS) == ["s-urgent", "s-wire"]  # urgent continues; the wire route takes it as well
    assert stories(SlackApiServer.CHANNEL) == ["s-mild"]  # no route took it: the default route


def test_silenced_alerts_are_recorded_not_sent_and_expire(world: AlertWorld, slack: SlackApiServer) -> None:
    engine = world.engine([Route("default", [api(slack)])], AlertTimingConfig(group_wait_seconds=0))
    s = Silence(new_silence_id(START, topic="sanctions"), "sanctions", None, "bbc", None, START,
                START + timedelta(days=1), "ops@desk", "bbc sanctions noise", START)
    assert add_silence(world.store.data_dir, s) == "queued"  # this process holds the store, like a daemon
    world.copies("s1", ["bbc"])
    world.copies("s2", ["ap"])
    assert engine.run().silenced == 1
    assert [m["metadata"]["event_payload"]["story_id"] for m in slack.messages] == ["s2"]
    (row,) = [r for r in world.log("first") if r["status"] == "silenced"]
    assert row["story_id"] == "s1" and s.silence_id in row["detail"]
    _, dl = world.store.query("SELECT status FROM alert_deliveries WHERE channel = 'slack' AND status = 'silenced'")
    assert len(dl) == 1  # done, not lost, not pending
    expire_silence(world.store.data_dir, s.silence_id, START + timedelta(minutes=1))
    world.advance(minutes=5)
    world.copies("s3", ["bbc"])
    assert engine.run().sent == 1  # the silence is over; s1 stays silenced
    assert [m["metadata"]["event_payload"]["story_id"] for m in slack.messages] == ["s2", "s3"]


def test_quiet_hours_hold_alerts_until_they_end_unless_severe(tmp_path: Path, slack: SlackApiServer) -> None:
    w = AlertWorld(tmp_path / "q", datetime(2026, 12, 1, 23, 0, tzinfo=UTC))
    try:
        quiet = QuietHoursConfig(start="22:00", end="07:00", timezone="UTC", override_score=0.9)
        engine = w.engine([Route("default", [api(slack)], quiet_hours=quiet)], AlertTimingConfig(group_wait_seconds=0))
        w.copies("s1", ["bbc"], score=0.7)
        w.copies("s2", ["ap"], score=0.95)
        s = engine.run()
        assert (s.sent, s.held_quiet) == (1, 1)
        assert [m["metadata"]["event_payload"]["story_id"] for m in slack.messages] == ["s2"]
        w.advance(hours=7, minutes=30)  # 06:30: still quiet
        assert engine.run().sent == 0
        w.advance(minutes=31)  # 07:01
        assert engine.run().sent == 1
        assert [m["metadata"]["event_payload"]["story_id"] for m in slack.messages] == ["s2", "s1"]
    finally:
        w.close()


def test_hourly_digest_lists_top_stories_per_topic_and_is_skipped_when_empty(world: AlertWorld, slack: SlackApiServer) -> None:
    routes = [Route("default", [api(slack)]),
              Route("digest", [api(slack, DIGEST, "digest")], match=RouteMatchConfig(topics=("peace-talks",)), digest="hourly")]
    engine = world.engine(routes, AlertTimingConfig(group_wait_seconds=0, digest_top=2))
    world.advance(minutes=5)
    world.copies("p1", ["bbc", "ap", "afp"], topic="peace-talks", title="Talks resume")
    world.copies("p2", ["bbc"], topic="peace-talks", title="Envoy lands")
    world.copies("p3", ["bbc", "dpa"], topic="peace-talks", title="Ceasefire text")
    engine.run()
    assert top_level(slack, DIGEST) == []  # no single alerts on a digest route
    world.advance(hours=1)  # 10:05: the 09:00-10:00 period has ended
    assert engine.run().digests == 1
    (digest,) = top_level(slack, DIGEST)
    text = digest["text"]
    assert "peace-talks: 3 stories" in text and "Talks resume (3 outlets)" in text and "Ceasefire text (2 outlets)" in text
    assert "Envoy lands" not in text and "… and 1 more" in text  # top 2
    assert text.index("Talks resume") < text.index("Ceasefire text")
    _, rows = world.store.query("SELECT count(*) FROM alert_deliveries WHERE channel = 'digest/slack' AND status = 'folded'")
    assert rows[0][0] == 3
    world.advance(hours=1)
    assert engine.run().digests == 0 and len(top_level(slack, DIGEST)) == 1  # empty hour: nothing sent
    assert [r["status"] for r in world.log("digest")][-1] == "skipped_empty"


def test_a_backlog_folds_into_one_digest_instead_of_a_flood(world: AlertWorld, slack: SlackApiServer) -> None:
    engine = world.engine([Route("default", [api(slack)])], AlertTimingConfig(group_wait_seconds=0, backlog_digest_after=5))
    for i in range(8):
        world.copies(f"s{i}", ["bbc"])
    s = engine.run()
    assert (s.sent, s.digests, s.folded) == (0, 1, 8)
    (msg,) = slack.messages
    assert "8 new stories at once" in msg["text"]
    assert engine.run().digests == 0 and len(slack.messages) == 1


# -- rate limits --------------------------------------------------------------------------------


def test_at_most_one_post_per_second_per_channel(world: AlertWorld, slack: SlackApiServer) -> None:
    routes = [Route("default", [api(slack)]), Route("sport", [api(slack, SPORT, "sport")], match=RouteMatchConfig(feed_tags=("sport",)))]
    engine = world.engine(routes, AlertTimingConfig(group_wait_seconds=0), limiter=ChannelLimiter(1.0))
    for i in range(4):
        world.copies(f"w{i}", ["bbc"])
        world.copies(f"s{i}", ["espn"], feed="f2")
    assert engine.run().sent == 8
    for channel in (SlackApiServer.CHANNEL, SPORT):
        times = slack.writes[channel]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # at the stand-in's arrivals: the interval starts when the previous call was answered
        assert len(times) == 4 and min(gaps) >= 0.99, gaps
    # the two channels went in parallel: the slower channel's last post came within ~1 interval of the other's
    assert abs(slack.writes[SPORT][-1] - slack.writes[SlackApiServer.CHANNEL][-1]) < 2.5


def test_retry_after_holds_the_channel_across_restarts(world: AlertWorld, slack: SlackApiServer) -> None:
    engine = world.engine([Route("default", [api(slack)])], AlertTimingConfig(group_wait_seconds=0))
    for i in range(3):
        world.copies(f"s{i}", ["bbc"])
    slack.answer_post(429, "ratelimited", {"Retry-After": "3"})
    s = engine.run()
    assert s.sent == 0 and slack.calls["chat.postMessage"] == 1  # the first 429 stops the channel for this run
    slack.answer_post()
    restarted = world.engine([Route("default", [api(slack)])], AlertTimingConfig(group_wait_seconds=0))
    assert restarted.run().sent == 0  # the hold was kept in the store: nothing goes to the channel
    assert slack.calls["chat.postMessage"] == 1
    time.sleep(3.2)
    assert restarted.run().sent == 2  # the two never tried; the one that got the 429 waits for its retry time
    world.advance(minutes=1)
    assert restarted.run().sent == 1
    assert len(slack.alert_ids()) == 3 == len(set(slack.alert_ids())) and slack.retry_after_violations == 0


# -- pipeline health ----------------------------------------------------------------------------


def test_health_alerts_go_to_the_ops_route_fire_once_and_resolve_once(world: AlertWorld, slack: SlackApiServer) -> None:
    ops = Route("ops", [api(slack, OPS, "ops")], ops=True)
    checks = pipeline_checks(world.store, HealthAlertsConfig(batch_failures=3, feeds=False), world.store.data_dir)
    engine = world.engine([Route("default", [api(slack)]), ops], AlertTimingConfig(group_wait_seconds=0), health=checks)
    write_health(world.store.data_dir, {"batch_failures_in_row": 4})
    assert engine.run().health == 1
    world.advance(minutes=10)
    assert engine.run().health == 0  # still failing: told once
    write_health(world.store.data_dir, {"batch_failures_in_row": 0})
    world.advance(minutes=10)
    assert engine.run().health == 1
    texts = [m["text"] for m in top_level(slack, OPS)]
    assert len(texts) == 2 and "4 batches failed in a row" in texts[0] and "resolved" in texts[1]
    assert top_level(slack) == []  # nothing on the newsdesk channel


def test_a_hung_post_that_arrived_is_found_not_posted_twice(world: AlertWorld) -> None:
    with SlackApiServer(faults=SlackFaults(rate_hang=1.0, hang_seconds=2.5)) as slack:
        engine = world.engine([Route("default", [api(slack)])], AlertTimingConfig(group_wait_seconds=0))
        world.copies("s1", ["bbc"])
        assert engine.run().transient == 1  # timed out; the stand-in had stored it
        slack.faults.rate_hang = 0.0
        world.advance(minutes=5)
        s = engine.run()
        assert s.confirmed == 1 and len(slack.messages) == 1


def test_a_failing_feed_and_growing_dead_letters_alert_ops_once_each(world: AlertWorld, slack: SlackApiServer) -> None:
    from pipeline.models import FeedState
    from pipeline.store import _insert

    ops = Route("ops", [api(slack, OPS, "ops")], ops=True)
    checks = pipeline_checks(world.store, HealthAlertsConfig(dead_letters_growth=3), world.store.data_dir)
    engine = world.engine([Route("default", [api(slack)]), ops], AlertTimingConfig(group_wait_seconds=0), health=checks)
    bad = FeedState("f2", last_success_at=START - timedelta(hours=5), error_streak=4, last_error="HTTP 503",
                    last_error_kind="http_5xx", last_status=503)
    world.store.record_poll(bad, fetched_at=START, outcome="error", status=503, error_kind="http_5xx", error="HTTP 503",
                            duration_ms=1, items=[])
    with world.store.transaction() as con:
        _insert(con, "dead_letters", [{"stage": "download", "key": f"k{i}", "error": "x", "payload": "{}",
                                       "created_at": START} for i in range(3)])
    engine.run()
    texts = [m["text"] for m in top_level(slack, OPS)]
    assert any("feed f2 is failing (4 errors in a row" in t for t in texts), texts
    assert any("3 dead letters in the last hour" in t for t in texts), texts
    world.advance(minutes=10)
    engine.run()
    assert len(top_level(slack, OPS)) == len(texts)  # each told once
    good = FeedState("f2", last_success_at=START, error_streak=0, last_status=200)
    world.store.record_poll(good, fetched_at=START, outcome="ok", status=200, error_kind=None, error=None,
                            duration_ms=1, items=[])
    world.advance(minutes=10)
    engine.run()
    assert any("resolved: feed f2 is ok again" in m["text"] for m in top_level(slack, OPS))


def _items(world: AlertWorld, when: datetime, n: int, tag: str) -> None:
    from pipeline.store import _insert

    with world.store.transaction() as con:
        _insert(con, "items", [{"item_id": f"{tag}{i}", "feed_id": "f1", "guid": f"{tag}{i}", "url": f"https://x.test/{tag}{i}",
                                "title": "t", "seen_at": when, "disposition": "stored"} for i in range(n)])


def test_a_volume_drop_across_feeds_alerts_ops_once_and_resolves_once(world: AlertWorld, slack: SlackApiServer) -> None:
    ops = Route("ops", [api(slack, OPS, "ops")], ops=True)
    checks = pipeline_checks(world.store, HealthAlertsConfig(feeds=False, volume_drop_fraction=0.5), world.store.data_dir)
    engine = world.engine([Route("default", [api(slack)]), ops], AlertTimingConfig(group_wait_seconds=0), health=checks)
    now = world.clock()
    # Three days of 40 new items every 6 hours, then 3 in the last 6 hours: far below half of usual.
    for w in range(1, 13):
        _items(world, now - timedelta(hours=6 * w + 1), 40, f"old{w}-")
    _items(world, now - timedelta(hours=1), 3, "new-")
    engine.run()
    texts = [m["text"] for m in top_level(slack, OPS)]
    assert len(texts) == 1 and "new items fell to 3 in 6 h (usually " in texts[0], texts
    world.advance(minutes=10)
    engine.run()
    assert len(top_level(slack, OPS)) == 1  # still low: told once
    _items(world, world.clock() - timedelta(minutes=5), 40, "back-")
    world.advance(minutes=10)
    engine.run()
    texts = [m["text"] for m in top_level(slack, OPS)]
    assert len(texts) == 2 and "resolved" in texts[1] and "new items back to" in texts[1], texts
    assert top_level(slack) == []


def test_overdue_store_maintenance_alerts_ops_once_and_resolves_when_it_runs(world: AlertWorld, slack: SlackApiServer) -> None:
    ops = Route("ops", [api(slack, OPS, "ops")], ops=True)
    last = [world.clock() - timedelta(hours=30)]
    checks = pipeline_checks(world.store, HealthAlertsConfig(feeds=False, maintenance_overdue_hours=24),
                             world.store.data_dir, last_maintained=lambda: last[0], started_at=world.clock())
    engine = world.engine([Route("default", [api(slack)]), ops], AlertTimingConfig(group_wait_seconds=0), health=checks)
    engine.run()
    texts = [m["text"] for m in top_level(slack, OPS)]
    assert len(texts) == 1 and "has not been maintained since" in texts[0], texts
    world.advance(minutes=10)
    engine.run()
    assert len(top_level(slack, OPS)) == 1
    last[0] = world.clock()  # a maintenance run
    world.advance(minutes=10)
    engine.run()
    texts = [m["text"] for m in top_level(slack, OPS)]
    assert len(texts) == 2 and "resolved" in texts[1] and "maintenance runs again" in texts[1], texts


def test_a_daily_digest_by_email_on_its_own_route(world: AlertWorld, slack: SlackApiServer, tmp_path: Path) -> None:
    with SmtpTestServer(tmp_path / "smtp") as smtp:
        mail = EmailNotifier(smtp.host, smtp.port, "newsmon@example.org", ("analysts@example.org",),
                             username=smtp.USERNAME, password=smtp.PASSWORD, ssl_context=smtp.client_ssl_context(),
                             local_hostname="localhost")
        routes = [Route("default", [api(slack)]),
                  Route("peace", [mail], match=RouteMatchConfig(topics=("peace-talks",)), digest="daily", digest_hour=8)]
        engine = world.engine(routes, AlertTimingConfig(group_wait_seconds=0))
        world.copies("p1", ["bbc", "ap"], topic="peace-talks", title="Talks resume")
        world.copies("s1", ["bbc"])  # another topic: the default route, at once
        engine.run()
        assert smtp.messages == [] and len(top_level(slack)) == 1
        world.advance(hours=22)  # 07:00 next day: the period ending at 08:00 has not ended
        assert engine.run().digests == 0
        world.advance(hours=1, minutes=5)
        assert engine.run().digests == 1
        (m,) = smtp.messages
        assert m.rcpt_tos == ["analysts@example.org"] and "daily digest (peace)" in m.message["Subject"]
        assert "Talks resume (2 outlets)" in m.message.get_content()
        assert engine.run().digests == 0 and len(smtp.messages) == 1
