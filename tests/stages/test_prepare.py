"""Per-article work made beside extraction (on the workers) gives the fold and the matcher's own results."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.models import Article, FeedItem
from pipeline.stages.dedup import DedupSettings
from pipeline.stages.match import cached_topics, match_folded
from pipeline.stages.prepare import prepare_article
from pipeline.stages.stories import StoryHistory

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 8, 3, 12, 0, tzinfo=UTC)

SANCTIONS = (
    "The European Union agreed a new package of sanctions on Russia on Friday, targeting oil exports, "
    "shadow fleet tankers and banks that help Moscow evade earlier measures, diplomats told Reuters.\n"
    "The package, the eighteenth since the invasion of Ukraine, lowers the price cap on Russian crude "
    "and bans transactions with two more Russian banks, according to the text seen by officials.\n"
    "Hungary and Slovakia lifted their objections after talks in Brussels that ran late into Thursday night."
)
HARBOUR = (
    "The harbour council approved the budget for the eastern district after a long debate on Tuesday, "
    "with money for new quays, a ferry terminal and dredging of the old canal.\n"
    "Councillors voted eleven to four for the plan, which the mayor said would bring jobs to the docks.\n"
    "Work on the ferry terminal starts in spring and should finish before the summer season of next year."
)


def _pair(n: int, text: str, title: str, hours: int) -> tuple[FeedItem, Article]:
    when = T0 + timedelta(hours=hours)
    url = f"https://news{n}.example/story/{n}"
    item = FeedItem(f"i{n}", "f", f"g{n}", url, title, "", when, T0)
    article = Article(f"a{n}", f"i{n}", "f", url, url, title, text, when, None, f"News {n}", "en", f"h{n}", T0)
    return item, article


BLURB = "\nSign up for our morning newsletter to get the news of the day before breakfast every weekday."


def _batch() -> list[tuple[FeedItem, Article]]:
    # Two unrelated articles end in the same newsletter blurb: the later one's blurb is chrome, so
    # its prepared document (made where no line is chrome) is made again by the fold.
    return [
        _pair(1, SANCTIONS + BLURB, "EU agrees new sanctions on Russia", 0),
        _pair(6, HARBOUR.replace("harbour", "river") + BLURB, "River budget approved", 1),
        _pair(2, SANCTIONS.replace("Friday", "Friday evening"), "New EU sanctions package on Russia", 1),  # a near copy
        _pair(3, HARBOUR, "Harbour budget approved", 2),
        _pair(4, SANCTIONS + BLURB, "EU sanctions", 3),  # an exact copy
        _pair(5, HARBOUR.replace("Tuesday", "Tuesday night") + "\nThe opposition called it reckless.", "Budget passes", 4),
    ]


def test_a_fold_of_prepared_articles_decides_and_matches_as_the_stages_do() -> None:
    settings = DedupSettings()
    topics_dir = str(ROOT / "seeds" / "topics")
    batch = _batch()
    # Made on a worker and sent back: a pickle round trip, as from the extraction pool.
    prepared = [(item, art, pickle.loads(pickle.dumps(prepare_article(item, art, settings, topics_dir))))
                for item, art in batch]

    plain = StoryHistory(settings).fold(batch)
    fast = StoryHistory(settings).fold(prepared)

    assert [(f.item, f.article, f.assignment, f.disposition, f.detail, f.wire_agency) for f in fast] == \
        [(f.item, f.article, f.assignment, f.disposition, f.detail, f.wire_agency) for f in plain]
    assert {f.disposition for f in plain} >= {"stored", "exact_copy"}
    assert any(f.wire_agency == "Reuters" for f in plain)
    assert all(f.matches is None for f in plain) and all(f.matches is not None for f in fast)

    topics = cached_topics(topics_dir)
    via_stage = [match_folded(f, topics) for f in plain]
    via_prep = [match_folded(f, topics) for f in fast]
    assert via_prep == via_stage
    assert any(r.matches for r in via_stage), "no topic matched: the test shows nothing"
    # A copy's matches, made on the worker, are dropped as the stage drops them.
    assert all(not r.matches for r in via_prep if r.disposition != "stored")
    # Without topics, only the fold's part is made.
    assert prepare_article(*batch[0], settings, None).matches is None
