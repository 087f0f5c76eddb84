"""The store: migrations, idempotent loads, the outbox, and readers beside a live writer."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.models import Article, Evidence, FeedItem, FeedState, ItemResult, StoryAssignment, TopicMatch
from pipeline.store import Store, alert_id_for
from pipeline.store.migrate import available

NOW = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)


def item(n: int, feed: str = "f1") -> FeedItem:
    return FeedItem(f"i{n}", feed, f"g{n}", f"https://example.org/{n}", f"title {n}", "", NOW, NOW)


def stored(n: int, story: str, link: str = "original", topics: tuple[str, ...] = ("sanctions",)) -> ItemResult:
    it = item(n)
    art = Article(f"a{n}", it.item_id, it.feed_id, it.url, it.url, f"Title {n}", f"text {n}", NOW, None, f"Site{n}", "en", f"h{n}", NOW)
    asg = StoryAssignment(art.article_id, story, link, None if link == "original" else "a0", 0.9)
    matches = tuple(TopicMatch(art.article_id, t, 0.8, "alert", (Evidence("rule", "r", "title", ("Russia",)),), alert=True) for t in topics)
    return ItemResult(it, "stored", None, art, asg, matches)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "data")
    yield s
    s.close()


def test_migrations_apply_once(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d") as s:
        versions = [r[0] for r in s.query("SELECT version FROM schema_migrations")[1]]
    with Store.open(tmp_path / "d") as s:
        again = [r[0] for r in s.query("SELECT version FROM schema_migrations")[1]]
    assert versions == again == [v for v, _, _ in available()]


def test_poll_commits_items_once(store: Store) -> None:
    st = FeedState("f1")
    new = store.record_poll(st, fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                            duration_ms=1, items=[item(1), item(2), item(1)])
    assert [i.item_id for i in new] == ["i1", "i2"]
    again = store.record_poll(st, fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                              duration_ms=1, items=[item(2), item(3)])
    assert [i.item_id for i in again] == ["i3"]
    assert [i.item_id for i in store.pending_items(10)] == ["i1", "i2", "i3"]
    assert store.feed_states()["f1"].items_total == 3


def test_load_batch_is_idempotent_and_alerts_once_per_topic_and_story(store: Store) -> None:
    store.record_poll(FeedState("f1"), fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                      duration_ms=1, items=[item(1), item(2), item(3)])
    first = [stored(1, "s1"), stored(2, "s1", "rewrite")]
    summary = store.load_batch("b1", first, now=NOW, runner="test", started_at=NOW)
    assert summary.alerts_new == 1 and summary.stories_new == 1
    # The same results again (a replay after a crash before cleanup) change nothing.
    again = store.load_batch("b1", first, now=NOW, runner="test", started_at=NOW)
    assert again.items == 0 and again.alerts_new == 0
    # A later copy of the same story in another batch does not alert again.
    later = store.load_batch("b2", [stored(3, "s1", "near_copy", ("sanctions", "ultimatum"))], now=NOW, runner="test", started_at=NOW)
    assert later.alerts_new == 1  # only the new topic
    _, rows = store.query("SELECT topic, story_id FROM alert_outbox ORDER BY topic")
    assert rows == [("sanctions", "s1"), ("ultimatum", "s1")]
    assert store.counts()["articles"] == 3 and store.counts()["story_members"] == 3
    assert {r[0] for r in store.query("SELECT disposition FROM items")[1]} == {"stored"}


def test_due_alerts_retry_and_finish_per_channel(store: Store) -> None:
    store.record_poll(FeedState("f1"), fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                      duration_ms=1, items=[item(1)])
    store.load_batch("b1", [stored(1, "s1")], now=NOW, runner="test", started_at=NOW)
    due = store.due_alerts(["email", "slack"], NOW, max_attempts=3)
    assert [(d.channel, d.attempt) for d in due] == [("email", 1), ("slack", 1)]
    aid = alert_id_for("sanctions", "s1")
    store.record_delivery(aid, "email", 1, "sent", now=NOW)
    store.record_delivery(aid, "slack", 1, "transient_error", now=NOW, next_attempt_at=NOW + timedelta(minutes=1))
    assert store.due_alerts(["email", "slack"], NOW, max_attempts=3) == []
    later = store.due_alerts(["email", "slack"], NOW + timedelta(minutes=2), max_attempts=3)
    assert [(d.channel, d.attempt) for d in later] == [("slack", 2)]
    store.record_delivery(aid, "slack", 2, "permanent_error", now=NOW, error="404 no_service")
    assert store.due_alerts(["email", "slack"], NOW + timedelta(hours=1), max_attempts=3) == []


def _query_in_other_process(data_dir: Path, sql: str) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "query", "--data-dir", str(data_dir), "--format", "json", sql],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.slow
def test_a_second_process_reads_fresh_rows_while_the_writer_holds_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    writer = Store.open(data)
    try:
        writer.record_poll(FeedState("f1"), fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                           duration_ms=1, items=[item(1), item(2)])
        assert _query_in_other_process(data, "SELECT count(*) AS n FROM items") == [{"n": 2}]
        # The writer is still open and keeps writing; the reader sees each commit.
        writer.record_poll(FeedState("f1"), fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                           duration_ms=1, items=[item(3)])
        writer.load_batch("b1", [stored(1, "s1")], now=NOW, runner="test", started_at=NOW)
        rows = _query_in_other_process(data, "SELECT count(*) AS n, count(*) FILTER (disposition = 'stored') AS s FROM items")
        assert rows == [{"n": 3, "s": 1}]
    finally:
        writer.close()


def test_reader_on_a_missing_store_says_what_to_do(tmp_path: Path) -> None:
    from pipeline.errors import StoreError

    with pytest.raises(StoreError, match="newsmon demo"):
        Store.open(tmp_path / "nothing", read_only=True)


def test_record_polls_commits_a_chunk_of_feeds_in_one_transaction(store: Store) -> None:
    from pipeline.store import PollRecord

    polls = [
        PollRecord(FeedState("f1"), NOW, "ok", 200, None, None, 1.0, (item(1, "f1"), item(2, "f1"))),
        PollRecord(FeedState("f2"), NOW, "ok", 200, None, None, 1.0, (item(2, "f2"), item(3, "f2"))),
        PollRecord(FeedState("f3", error_streak=1), NOW, "error", 503, "http_5xx", "503", 1.0),
    ]
    new = store.record_polls(polls)
    # i2 is the same item id in both feeds here: the first poll that brought it owns it.
    assert {k: [i.item_id for i in v] for k, v in new.items()} == {"f1": ["i1", "i2"], "f2": ["i3"], "f3": []}
    states = store.feed_states()
    assert (states["f1"].items_total, states["f2"].items_total, states["f3"].error_streak) == (2, 1, 1)
    _, rows = store.query("SELECT feed_id, new_items FROM fetch_log ORDER BY feed_id")
    assert rows == [("f1", 2), ("f2", 1), ("f3", 0)]
    assert store.scalar("SELECT count(*) FROM feed_state") == 3
