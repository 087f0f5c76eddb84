"""A short text files its long names also by their first letters (settings.short_name_prefix).

The entries are written for this test: an invented minister's name spelt two ways, as feeds
transliterate it, and a demonym beside its country.
"""

from __future__ import annotations

from dataclasses import replace

from pipeline.models import DedupDoc
from pipeline.stories.index import StoryIndex
from pipeline.stories.pairs import FEATURES
from pipeline.stories.settings import DedupSettings

ENTRY_A = "Minister Dravenskiy visits Valdorian port after harbour strike"
ENTRY_B = "Dravensky tours Valdoria harbour as strike ends"


def _cos_names(a: str, b: str, settings: DedupSettings) -> float:
    index = StoryIndex(replace(settings, use_pair_model=False))
    docs = [DedupDoc(doc_id="a", text=a, title=""), DedupDoc(doc_id="b", text=b, title="")]
    index.observe(docs)
    for doc in docs:
        index.add(doc, story_id=doc.doc_id)
    return dict(zip(FEATURES, index.pair_features_of("a", "b").tolist(), strict=True))["cos_names"]


def test_spellings_of_one_name_meet_in_short_texts() -> None:
    settings = DedupSettings()
    assert _cos_names(ENTRY_A, ENTRY_B, replace(settings, short_name_prefix=0)) == 0.0
    assert _cos_names(ENTRY_A, ENTRY_B, settings) > 0.2


def test_full_articles_keep_exact_names() -> None:
    # Fourteen content words or more: a full article, whose names are not cut.
    tail = " Dockworkers returned, cranes restarted, freight schedules resumed, shipping agents reported steady cargo volumes overnight."
    long_a, long_b = ENTRY_A + "." + tail, ENTRY_B + "." + tail
    settings = DedupSettings()
    assert _cos_names(long_a, long_b, settings) == _cos_names(long_a, long_b, replace(settings, short_name_prefix=0))
