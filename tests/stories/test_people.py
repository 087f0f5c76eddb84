"""The protagonist of a text (pipeline/stories/people.py) and the pair feature built on it.

The texts are written for this test: two arrests of players of one (invented) team, a month
apart, told in the same words but for the player.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipeline.models import DedupDoc
from pipeline.stories.index import StoryIndex
from pipeline.stories.pairs import FEATURES
from pipeline.stories.people import person_counts, protagonist
from pipeline.stories.settings import DedupSettings

FIRST = [
    "Harbour City Gulls receiver Tomas Brennick was arrested early Tuesday on suspicion of drunken driving.",
    "Brennick failed sobriety tests after he was stopped on the coast highway, the Highway Patrol said.",
    "The Gulls said they were aware of the arrest. Brennick is expected to play on Sunday.",
]
FIRST_REWRITE = [
    "Police arrested Gulls wide receiver Tomas Brennick on suspicion of driving under the influence.",
    "Officers said Brennick was stopped on the coast highway in Harbour City and failed sobriety tests.",
    "Brennick was released hours later, and the Gulls declined to comment.",
]
SECOND = [
    "Harbour City Gulls defensive tackle Marek Oduya was arrested early Sunday on suspicion of drunken driving.",
    "Oduya was stopped for speeding on the coast highway, the Highway Patrol said.",
    "The Gulls said they were aware of the arrest, the team's second in a month. Oduya was released.",
]


def test_the_protagonist_is_the_person_named_in_full_then_by_surname() -> None:
    counts, _ = person_counts("Gulls receiver arrested", FIRST)
    assert counts["brennick"] == 3
    # "Harbour City Gulls" is written in one form only; "Highway Patrol" never alone: no people.
    assert "gulls" not in counts and "patrol" not in counts and "city" not in counts
    assert protagonist("Gulls receiver arrested", FIRST, 2) == "brennick"
    assert protagonist("Gulls tackle arrested", SECOND, 2) == "oduya"


def test_a_sentence_opening_word_is_no_person_and_capitals_say_nothing() -> None:
    lines = ["The Gulls won again.", "The coach, Anna Perl, was pleased. The team flew home."]
    assert "the" not in person_counts("", lines)[0]
    assert person_counts("ALL CAPS HEADLINE ABOUT ANNA PERL", [])[0] == {}


def test_a_protagonist_the_lead_does_not_name_is_none() -> None:
    lines = [
        "A shooting at an office party left one man dead on Friday.",
        "Police said the gunman had been fired the week before.",
        "The victim, Paul Ressing, was a father of two. Ressing had worked there for ten years.",
    ]
    assert person_counts("Office party shooting", lines)[0]["ressing"] == 2
    assert protagonist("Office party shooting", lines, 2) is None


def _features(a: list[str], b: list[str]) -> dict[str, float]:
    index = StoryIndex(replace(DedupSettings(), use_pair_model=False))
    docs = [DedupDoc(doc_id="a", text="\n".join(a), title=""), DedupDoc(doc_id="b", text="\n".join(b), title="")]
    index.observe(docs)
    for doc in docs:
        index.add(doc, story_id=doc.doc_id)
    return dict(zip(FEATURES, index.pair_features_of("a", "b").tolist(), strict=True))


def test_another_players_arrest_differs_in_protagonist_and_a_rewrite_does_not() -> None:
    assert _features(FIRST, SECOND)["protagonist_missing"] == 1.0
    assert _features(FIRST, FIRST_REWRITE)["protagonist_missing"] == 0.0


def test_a_protagonist_conflict_vetoes_the_pair_in_the_shipped_model() -> None:
    from pipeline.stories.pairs import load_model, model_from_dict
    from pipeline.stories.train import model_to_dict

    model = load_model()
    assert "protagonist_missing" in model.long.vetoes
    same = _features(FIRST, FIRST_REWRITE)
    other = _features(FIRST, SECOND)

    def vector(f: dict[str, float]) -> np.ndarray:
        return np.array([f[name] for name in FEATURES])

    assert model.long.probability(vector(other)) == 0.0
    assert model.long.probability(vector(same)) > 0.0
    # The rule travels with the saved model.
    report = {"rows": 0, "out_of_fold": {}, "in_sample": {}}
    assert model_from_dict(model_to_dict(model, report)).long.vetoes == model.long.vetoes
