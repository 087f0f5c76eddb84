"""The outbox dispatcher against a real store and real loopback channels: claim, send, record, and
what happens to a delivery that was in flight when the process died (in doubt)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.alert.dispatch import dispatch, to_message
from pipeline.alert.notifiers import SlackApiNotifier, SlackWebhookNotifier
from pipeline.models import Article, Evidence, FeedItem, FeedState, ItemResult, StoryAssignment, TopicMatch
from pipeline.store import Store
from tests.alert.servers import SlackApiServer, WebhookReceiver

NOW = datetime.now(UTC)


def _result(n: int, story: str) -> ItemResult:
    it = FeedItem(f"i{n}", "f1", f"g{n}", f"https://example.org/{n}", f"title {n}", "", NOW, NOW)
    art = Article(f"a{n}", it.item_id, "f1", it.url, it.url, f"Title {n}", f"text {n}", NOW, None, "Site", "en", f"h{n}", NOW)
    match = TopicMatch(art.article_id, "sanctions", 0.8, "alert", (Evidence("rule", "r", "title", ("Russia",)),), alert=True)
    return ItemResult(it, "stored", None, art, StoryAssignment(art.article_id, story, "original", None, 0.9), (match,))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "data")
    s.record_poll(FeedState("f1"), fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                  duration_ms=1, items=[_result(1, "s1").item])
    s.load_batch("b1", [_result(1, "s1")], now=NOW, runner="test", started_at=NOW)
    yield s
    s.close()


@pytest.fixture
def slack_api() -> Iterator[SlackApiServer]:
    with SlackApiServer() as server:
        yield server


def _api(server: SlackApiServer) -> SlackApiNotifier:
    return SlackApiNotifier(server.TOKEN, server.CHANNEL, api_url=server.api_url, timeout=5)


def _log(store: Store) -> list[tuple[str, int, str, str | None]]:
    _, rows = store.query("SELECT channel, attempt, status, receipt FROM alert_deliveries ORDER BY attempted_at, status")
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _die_mid_send(store: Store, notifier: object, *, arrived: bool) -> str:
    """What a SIGKILL leaves behind: the claim is committed, the outcome is not; the channel has
    the alert or not, depending on when the process died."""
    (due,) = store.due_alerts(["slack"], datetime.now(UTC), max_attempts=8)
    store.record_delivery(due.alert_id, "slack", due.attempt, "sending", now=datetime.now(UTC))
    if arrived:
        notifier.send(to_message(due))  # type: ignore[attr-defined]
    return due.alert_id


def test_each_delivery_is_claimed_then_recorded_with_its_receipt(store: Store, slack_api: SlackApiServer) -> None:
    summary = dispatch(store, [_api(slack_api)], max_attempts=8)
    assert summary.sent == 1 and len(slack_api.messages) == 1
    ts = slack_api.messages[0]["ts"]
    assert _log(store) == [("slack", 1, "sending", None), ("slack", 1, "sent", ts)]
    assert dispatch(store, [_api(slack_api)], max_attempts=8).sent == 0
    assert len(slack_api.messages) == 1


def test_in_doubt_alert_that_arrived_is_confirmed_not_posted_again(store: Store, slack_api: SlackApiServer) -> None:
    aid = _die_mid_send(store, _api(slack_api), arrived=True)
    (due,) = store.due_alerts(["slack"], datetime.now(UTC), max_attempts=8)
    assert due.in_doubt and due.alert_id == aid

    summary = dispatch(store, [_api(slack_api)], max_attempts=8)

    assert summary.confirmed == 1 and summary.sent == 0
    assert slack_api.alert_ids() == [aid]  # still exactly one message in the channel
    assert _log(store)[-1] == ("slack", 1, "sent", slack_api.messages[0]["ts"])
    assert store.due_alerts(["slack"], datetime.now(UTC), max_attempts=8) == []


def test_in_doubt_alert_that_never_arrived_is_sent(store: Store, slack_api: SlackApiServer) -> None:
    aid = _die_mid_send(store, _api(slack_api), arrived=False)
    summary = dispatch(store, [_api(slack_api)], max_attempts=8)
    assert summary.sent == 1 and summary.confirmed == 0
    assert slack_api.alert_ids() == [aid]
    assert slack_api.calls["conversations.history"] >= 1


def test_in_doubt_alert_waits_while_the_channel_cannot_be_read(store: Store, slack_api: SlackApiServer) -> None:
    aid = _die_mid_send(store, _api(slack_api), arrived=True)
    slack_api.history_error = "service_unavailable"
    summary = dispatch(store, [_api(slack_api)], max_attempts=8)
    assert (summary.sent, summary.confirmed, summary.resent_in_doubt) == (0, 0, 0)
    assert store.due_alerts(["slack"], datetime.now(UTC), max_attempts=8)[0].in_doubt  # still undecided

    slack_api.history_error = None
    assert dispatch(store, [_api(slack_api)], max_attempts=8).confirmed == 1
    assert slack_api.alert_ids() == [aid]


@pytest.mark.parametrize("policy", ["resend", "skip"])
def test_a_webhook_cannot_confirm_so_its_policy_decides(store: Store, policy: str) -> None:
    with WebhookReceiver() as hook:
        notifier = SlackWebhookNotifier(hook.url, timeout=5)
        _die_mid_send(store, notifier, arrived=True)
        summary = dispatch(store, [notifier], max_attempts=8, on_in_doubt={"slack": policy})
        if policy == "resend":
            assert summary.resent_in_doubt == 1 and len(hook.posts) == 2
            assert _log(store)[-1][2] == "sent"
        else:
            assert summary.skipped_in_doubt == 1 and len(hook.posts) == 1
            assert _log(store)[-1][2] == "skipped_in_doubt"
        assert store.due_alerts(["slack"], datetime.now(UTC), max_attempts=8) == []


def test_a_crash_inside_a_notifier_leaves_the_delivery_in_doubt(store: Store, slack_api: SlackApiServer) -> None:
    class Exploding(SlackApiNotifier):
        def send(self, msg):  # type: ignore[no-untyped-def]
            super().send(msg)
            raise RuntimeError("bug after the post")

    with pytest.raises(RuntimeError):
        dispatch(store, [Exploding(slack_api.TOKEN, slack_api.CHANNEL, api_url=slack_api.api_url)], max_attempts=8)
    assert store.due_alerts(["slack"], datetime.now(UTC), max_attempts=8)[0].in_doubt
    assert dispatch(store, [_api(slack_api)], max_attempts=8).confirmed == 1
    assert len(slack_api.messages) == 1
