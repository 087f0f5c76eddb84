"""The store's side of fetch reliability: host holds, download retries across batches, dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.models import FeedItem, FeedState, ItemResult
from pipeline.store import RETRY, RetryPolicy, Store

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base_delay=timedelta(minutes=10), max_delay=timedelta(hours=1))


def item(n: int) -> FeedItem:
    return FeedItem(f"i{n}", "f1", f"g{n}", f"https://example.org/{n}", f"title {n}", "", NOW, NOW)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "data")
    s.record_poll(FeedState("f1"), fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                  duration_ms=1, items=[item(n) for n in range(1, 5)])
    yield s
    s.close()


def item_row(store: Store, item_id: str) -> dict:
    cols, rows = store.query("SELECT disposition, attempts, retry_at, last_error FROM items WHERE item_id = ?", [item_id])
    return dict(zip(cols, rows[0], strict=True))


def test_host_holds_round_trip_and_expire(store: Store) -> None:
    assert store.host_holds(NOW) == {}
    store.save_host_holds({"a.example": NOW + timedelta(hours=1), "b.example": NOW + timedelta(hours=3),
                           "old.example": NOW - timedelta(minutes=1)}, NOW)
    assert store.host_holds(NOW) == {"a.example": NOW + timedelta(hours=1), "b.example": NOW + timedelta(hours=3)}
    # Two hours on, a.example's hold has passed: not returned, and its row is deleted.
    assert store.host_holds(NOW + timedelta(hours=2)) == {"b.example": NOW + timedelta(hours=3)}
    assert store.scalar("SELECT count(*) FROM host_holds") == 1
    store.save_host_holds({}, NOW + timedelta(hours=4))
    assert store.scalar("SELECT count(*) FROM host_holds") == 0


def test_a_retry_keeps_the_item_pending_until_its_time_then_gives_it_up(store: Store) -> None:
    s1 = store.load_batch("b1", [ItemResult(item(1), RETRY, "robots.txt unreachable: http_5xx: 503")],
                          now=NOW, runner="t", started_at=NOW, retry=POLICY)
    assert s1.dispositions == {RETRY: 1} and s1.dead_letters == 0
    row = item_row(store, "i1")
    assert row["disposition"] == "pending" and row["attempts"] == 1
    assert row["retry_at"] == NOW + timedelta(minutes=10) and "503" in row["last_error"]
    # Waiting: left out of the next batch, but still in the spool.
    assert "i1" not in [i.item_id for i in store.pending_items(10, now=NOW + timedelta(minutes=5))]
    assert "i1" in [i.item_id for i in store.pending_items(10, now=NOW + timedelta(minutes=10))]
    assert "i1" in [i.item_id for i in store.pending_items(10)]
    # A replay of the same batch (crash before the shards were removed) does not count twice.
    again = store.load_batch("b1", [ItemResult(item(1), RETRY, "again")], now=NOW, runner="t", started_at=NOW,
                             retry=POLICY)
    assert again.items == 0 and item_row(store, "i1")["attempts"] == 1
    t2 = NOW + timedelta(minutes=11)
    store.load_batch("b2", [ItemResult(item(1), RETRY, "timeout: slow")], now=t2, runner="t", started_at=t2, retry=POLICY)
    assert item_row(store, "i1")["retry_at"] == t2 + timedelta(minutes=20)  # backoff doubles
    t3 = t2 + timedelta(minutes=21)
    s3 = store.load_batch("b3", [ItemResult(item(1), RETRY, "timeout: still slow")], now=t3, runner="t",
                          started_at=t3, retry=POLICY)
    assert s3.dispositions == {"download_failed": 1} and s3.dead_letters == 1
    row = item_row(store, "i1")
    assert row["disposition"] == "download_failed"
    cols, rows = store.dead_letters()
    dead = dict(zip(cols, rows[0], strict=True))
    assert (dead["stage"], dead["reason"], dead["attempts"], dead["feed_id"], dead["key"]) == (
        "download", "retries_exhausted", 3, "f1", "i1")
    assert "still slow" in dead["error"] and dead["url"] == "https://example.org/1"
    payload = json.loads(store.scalar("SELECT payload FROM dead_letters WHERE key = 'i1'"))
    assert payload["item_id"] == "i1" and payload["url"] == "https://example.org/1"  # enough to replay it


def test_permanent_failures_and_extraction_errors_are_dead_lettered(store: Store) -> None:
    results = [
        ItemResult(item(1), "download_failed", "http_4xx: https://example.org/1 answered 404"),
        ItemResult(item(2), "extract_failed", "ParserError: Document is empty"),
        ItemResult(item(3), "extract_failed", "no main text found"),  # a judgment, not a failure
        ItemResult(item(4), "refused", "robots.txt"),  # a policy, not a failure
    ]
    s = store.load_batch("b1", results, now=NOW, runner="t", started_at=NOW, retry=POLICY)
    assert s.dead_letters == 2 and store.dead_letter_count() == 2
    _, rows = store.query("SELECT key, stage, reason, attempts FROM dead_letters ORDER BY key")
    assert rows == [("i1", "download", "permanent_error", 1), ("i2", "extract", "extract_error", 1)]
    assert store.pending_items(10) == []
