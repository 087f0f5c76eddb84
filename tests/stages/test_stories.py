"""The story index kept between batches forgets what a history read from the store would not hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.models import Article, DedupDoc, FeedItem
from pipeline.stages.dedup import DedupSettings
from pipeline.stages.stories import StoryHistory

T0 = datetime(2025, 8, 3, 12, 0, tzinfo=UTC)


def _pair(n: int, published: datetime | None) -> tuple[FeedItem, Article]:
    text = f"Council {n} approved budget number {n * 7919} for the harbour district of town {n}. " * 3
    item = FeedItem(f"i{n}", "f", f"g{n}", f"https://news.example/{n}", f"Budget {n}", "", published, T0)
    article = Article(
        f"a{n}", f"i{n}", "f", f"https://news.example/{n}", f"https://news.example/{n}", f"Budget {n}", text,
        published, None, "News", "en", f"h{n}", T0,
    )
    return item, article


def test_dated_articles_go_by_publication_and_undated_ones_by_when_they_were_indexed() -> None:
    stories = StoryHistory(DedupSettings())
    folded = stories.fold([_pair(1, None), _pair(2, T0 - timedelta(days=1))])
    assert [f.disposition for f in folded] == ["stored", "stored"] and len(stories) == 2
    stories.forget_before(T0 - timedelta(days=2))
    assert len(stories) == 2
    stories.forget_before(T0 - timedelta(hours=12))   # the dated one was published before this
    assert stories.index.assignment_of("a2") is None and stories.index.assignment_of("a1") is not None
    stories.forget_before(T0 + timedelta(hours=1))    # the undated one was fetched and indexed at T0
    assert len(stories) == 0
    # Forgotten means gone: the same article seen again is folded anew, not a duplicate.
    assert [f.disposition for f in stories.fold([_pair(1, None)])] == ["stored"]


def test_undated_history_counts_as_indexed_when_it_was_loaded() -> None:
    stories = StoryHistory(DedupSettings())
    doc = DedupDoc("a9", "Harbour council approved the budget for the district after a long debate. " * 3)
    stories.load([(doc, "s_old")], now=T0)
    stories.forget_before(T0 - timedelta(minutes=1))
    assert stories.index.assignment_of("a9") is not None
    stories.forget_before(T0 + timedelta(minutes=1))
    assert stories.index.assignment_of("a9") is None
