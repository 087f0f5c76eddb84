"""Compiled topics: frozen dataclasses of plain values, so a `Topic` pickles (Beam ships the list
to its workers)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.topics.learn import TopicModel, feature_names, fingerprint
from pipeline.topics.query import Node

# ---------------------------------------------------------------------------------------------
# Compiled topics.


@dataclass(frozen=True)
class Rule:
    """One named clause of a topic: its query as written and compiled, the zone it reads, its weight."""

    name: str
    query: str
    node: Node
    zone: str = "any"
    weight: float = 1.0


@dataclass(frozen=True)
class Exemplar:
    """A seed document as a unit-length TF-IDF vector (kept as sorted pairs: hashable, picklable)."""

    id: str
    vector: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Example:
    """A snippet from a topic file's `examples`, run by `check_examples`."""

    text: str
    title: str = ""


@dataclass(frozen=True)
class Topic:
    """A compiled topic file (see seeds/TOPICS.md for the meaning of each field)."""

    id: str
    description: str
    rules: tuple[Rule, ...]
    exemplars: tuple[Exemplar, ...] = ()
    alert_threshold: float = 0.5
    mention_threshold: float = 0.2
    alert_on_mentions: bool = False
    exemplar_weight: float = 0.2
    must_match: tuple[Example, ...] = ()
    must_not_match: tuple[Example, ...] = ()
    # Training-only examples, (label, example): `examples.train_about`, `train_mentions`, `train_no`.
    training: tuple[tuple[str, Example], ...] = ()
    source: str = ""  # the file it was loaded from, for messages
    # The topic's words beyond its rules, one query (usually an OR of words): a feature for the
    # learned model, never a match on its own.
    vocabulary: Rule | None = None
    # Rule names of which at least one must fire for an alert: the sense check ("a deadline tied
    # to ending the war", not any deadline near "Russia"). Empty: no such check.
    require: tuple[str, ...] = ()
    # The learned relevance model (<id>.model.json beside the file), or None: rules alone score.
    model: TopicModel | None = None
    model_stale: bool = False  # trained on other rules or vocabulary than the file has now

    @property
    def feature_names(self) -> tuple[str, ...]:
        return feature_names([r.name for r in self.rules], self.vocabulary is not None)

    @property
    def fingerprint(self) -> str:
        vocab = self.vocabulary.query if self.vocabulary else ""
        return fingerprint([(r.name, r.query, r.zone) for r in self.rules], vocab)


