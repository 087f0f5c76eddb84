"""The writer's in-memory key sets (pipeline/store/keys.py): same answers as the tables, in step
with commits (a failed commit adds nothing), and no store lock for the poll workers' probe."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

import pipeline.store as store_module
from pipeline.models import Article, FeedItem, FeedState, ItemResult, StoryAssignment
from pipeline.store import PollRecord, Store
from pipeline.store.keys import KeySet, hash_sql, key_hash

NOW = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)


def item(key: str, feed: str = "f1") -> FeedItem:
    return FeedItem(key, feed, f"g-{key}", f"https://example.org/{key}", f"title {key}", "", NOW, NOW)


def poll(feed: str, *items: FeedItem) -> PollRecord:
    return PollRecord(FeedState(feed), NOW, "ok", 200, None, None, 1.0, tuple(items))


def test_python_hash_equals_duckdb_hash() -> None:
    keys = ["i1", "", "0123456789abcdef0123", "s_ab12cd34ef56", "Zürich – 東京 🙂", "x" * 300]
    con = duckdb.connect()
    got = [r[0] for r in con.execute(f"SELECT {hash_sql('k')} FROM (SELECT unnest(?::VARCHAR[]) AS k)", [keys]).fetchall()]
    assert got == [key_hash(k) for k in keys]


def test_key_set_answers_like_a_set_across_folds() -> None:
    rng = random.Random(3)
    stored = [f"{rng.getrandbits(80):020x}" for _ in range(1000)]
    ks = KeySet(__import__("numpy").array([key_hash(k) for k in stored], dtype="uint64"))
    truth = set(stored)
    for _ in range(3):  # 3 x 30,000 additions: the recent set is folded into the array at least once
        more = [f"{rng.getrandbits(80):020x}" for _ in range(30_000)]
        ks.add(more)
        truth.update(more)
    probe = rng.sample(sorted(truth), 2000) + [f"new{i}" for i in range(2000)]
    assert ks.known(probe) == truth & set(probe)
    assert len(ks) == len(truth)
    assert ks._recent and len(ks._base) > 1000  # noqa: SLF001 - both halves were exercised


def test_key_sets_equal_the_tables_after_polls_batches_and_a_reopen(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with Store.open(data) as s:
        s.record_polls([poll("f1", item("i1"), item("i2")), poll("f2", item("i3"))])
        res = []
        for k in ("i1", "i2"):
            it = item(k)
            art = Article(f"a-{k}", k, "f1", it.url, it.url, "T", "text", NOW, None, "Site", "en", "h", NOW)
            res.append(ItemResult(it, "stored", None, art, StoryAssignment(art.article_id, f"s-{k}", "original", None, 1.0)))
        s.load_batch("b1", res, now=NOW, runner="test", started_at=NOW)
        in_memory = {t: s._key_set(t).known(["i1", "i2", "i3", "a-i1", "a-i2", "s-i1", "s-i2", "zz"])  # noqa: SLF001
                     for t in ("items", "articles", "stories")}
    assert in_memory == {"items": {"i1", "i2", "i3"}, "articles": {"a-i1", "a-i2"}, "stories": {"s-i1", "s-i2"}}
    with Store.open(data) as s:  # loaded from the tables this time
        assert s.known_item_ids(["i1", "i3", "i9"]) == {"i1", "i3"}
        assert s.key_set_sizes()["items"][0] == 3
        # A second batch storing the same article: the loaded set knows it (no second copy).
        it = item("i4")
        s.record_polls([poll("f1", it)])
        art = Article("a-i1", "i4", "f1", it.url, it.url, "T", "text", NOW, None, "Site", "en", "h", NOW)
        summary = s.load_batch("b2", [ItemResult(it, "stored", None, art, StoryAssignment("a-i1", "s-i1", "original", None, 1.0))],
                               now=NOW, runner="test", started_at=NOW)
        assert summary.dispositions == {"duplicate_url": 1}
        assert s.scalar("SELECT count(*) FROM articles") == 2


def test_a_failed_commit_adds_no_key_so_the_item_is_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(tmp_path / "d") as s:
        s.record_polls([poll("f1", item("i1"))])
        real_insert = store_module._insert  # noqa: SLF001

        def failing(con, table, rows):
            real_insert(con, table, rows)
            if table == "fetch_log":  # after the items were written, inside the same transaction
                raise OSError("disk full")

        monkeypatch.setattr(store_module, "_insert", failing)
        with pytest.raises(OSError):
            s.record_polls([poll("f1", item("i1"), item("i2"))])
        monkeypatch.setattr(store_module, "_insert", real_insert)
        assert s.known_item_ids(["i1", "i2"]) == {"i1"}
        new = s.record_polls([poll("f1", item("i1"), item("i2"))])
        assert [it.item_id for it in new["f1"]] == ["i2"]
        assert s.scalar("SELECT count(*) FROM items") == 2


def test_the_writers_known_items_probe_does_not_wait_for_a_transaction(tmp_path: Path) -> None:
    """The poll workers ask once per parsed feed; with the store lock held by a long commit they
    used to queue behind it (most of a poll cycle's commit time)."""
    with Store.open(tmp_path / "d") as s:
        s.record_polls([poll("f1", item("i1"))])
        s.known_item_ids(["i1"])  # loaded
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            with s.transaction():
                inside.set()
                release.wait(60)

        t = threading.Thread(target=hold)
        t.start()
        try:
            assert inside.wait(60)
            answer: list[set[str]] = []
            probe = threading.Thread(target=lambda: answer.append(s.known_item_ids(["i1", "i2"])))
            probe.start()
            probe.join(60)
            assert answer == [{"i1"}], "the probe waited for the open transaction"
        finally:
            release.set()
            t.join()


def test_loading_the_key_sets_inside_a_transaction_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d") as s, pytest.raises(RuntimeError, match="before a transaction"):
        with s.transaction():
            s.known_item_ids(["i1"])
