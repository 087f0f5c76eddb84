"""A store whose stories grow under a controlled clock, for the alert lifecycle tests.

    w = AlertWorld(tmp_path / "data", start)
    w.copies("s1", ["bbc", "ap"])        # one batch: the story's first articles (the alert is raised once)
    w.advance(minutes=5)
    engine = w.engine(routes)            # an AlertEngine on this store, clock and a fast limiter

Used by tests/alert/test_lifecycle.py and by the fault-test driver (tests/alert/fault_driver.py),
which runs in its own process so it can be killed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.alert.lifecycle import AlertEngine
from pipeline.alert.ratelimit import ChannelLimiter
from pipeline.alert.routes import Route
from pipeline.config import AlertTimingConfig, Source
from pipeline.models import Article, Evidence, FeedItem, FeedState, ItemResult, StoryAssignment, TopicMatch
from pipeline.store import PollRecord, Store


class AlertWorld:
    def __init__(self, data_dir: Path, start: datetime, feeds: Sequence[Source] = ()) -> None:
        self.store = Store.open(data_dir)
        self.t = start
        self.n = int(self.store.scalar("SELECT count(*) FROM items") or 0)
        self.store.sync_feeds(list(feeds) or [Source(id="f1", url="https://example.org/f1.xml")], start)

    def clock(self) -> datetime:
        return self.t

    def advance(self, **delta: float) -> None:
        self.t += timedelta(**delta)

    def copies(self, story: str, outlets: Sequence[str], *, topic: str = "sanctions", score: float = 0.8,
               feed: str = "f1", title: str | None = None, key: str | None = None) -> None:
        """One batch: an article of `story` from each outlet, seen now. `key` makes the item ids
        deterministic (a driver that is killed and restarts loads the same copies again)."""
        results = []
        for i, outlet in enumerate(outlets):
            self.n += 1
            n = f"{key}-{i}" if key else str(self.n)
            it = FeedItem(f"i{n}", feed, f"g{n}", f"https://{outlet}.example/{n}", f"title {n}", "", self.t, self.t)
            art = Article(f"a{n}", it.item_id, feed, it.url, it.url, title or f"Story {story}", f"text {n}", self.t,
                          None, outlet, "en", f"h{n}", self.t)
            match = TopicMatch(art.article_id, topic, score, "alert", (Evidence("rule", "r", "title", ("x",)),), alert=True)
            results.append(ItemResult(it, "stored", None, art, StoryAssignment(art.article_id, story, "near_copy", None, 0.9),
                                      (match,)))
        self.store.record_poll(FeedState(feed), fetched_at=self.t, outcome="ok", status=200, error_kind=None, error=None,
                               duration_ms=1, items=[r.item for r in results])
        self.store.load_batch(f"b-{key or self.n}", results, now=self.t, runner="test", started_at=self.t)

    def copies_many(self, copies: Sequence[Sequence[str]], batch_id: str, seen_at: datetime | None = None) -> None:
        """One batch of copies of several stories: rows (story, outlet, topic, feed, item key).
        `seen_at` fixes the items' time: a batch loaded again after a kill must carry the items as
        the spool holds them (the store looks for pending items from their seen_at on)."""
        results = []
        seen = seen_at or self.t
        for story, outlet, topic, feed, n in copies:
            it = FeedItem(f"i{n}", feed, f"g{n}", f"https://{outlet}.example/{n}", f"title {n}", "", seen, seen)
            art = Article(f"a{n}", it.item_id, feed, it.url, it.url, f"Story {story}", f"text {n}", self.t, None, outlet,
                          "en", f"h{n}", self.t)
            match = TopicMatch(art.article_id, topic, 0.8, "alert", (Evidence("rule", "r", "title", ("x",)),), alert=True)
            results.append(ItemResult(it, "stored", None, art, StoryAssignment(art.article_id, story, "near_copy", None, 0.9),
                                      (match,)))
        # One transaction for the cycle's polls, as the daemon commits them (record_polls).
        self.store.record_polls([PollRecord(FeedState(feed), self.t, "ok", 200, None, None, 1,
                                            tuple(r.item for r in results if r.item.feed_id == feed))
                                 for feed in sorted({r.item.feed_id for r in results})])
        self.store.load_batch(batch_id, results, now=self.t, runner="test", started_at=self.t)

    def engine(self, routes: Sequence[Route], timing: AlertTimingConfig | None = None, **kw: Any) -> AlertEngine:
        kw.setdefault("limiter", ChannelLimiter(1000.0))
        return AlertEngine(self.store, routes, timing or AlertTimingConfig(), now=self.clock, **kw)

    def log(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM alert_notifications" + (" WHERE kind = ?" if kind else "") + " ORDER BY noted_at, status"
        cols, rows = self.store.query(sql, [kind] if kind else [])
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def close(self) -> None:
        self.store.close()
