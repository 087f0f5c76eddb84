"""A topic's relevance model: features an article shows for a topic, and a logistic regression
over them learned from labelled examples.

Contract
--------
consumes  a compiled `Topic` and labelled texts (`Labelled`: title, text, label about | mentions |
          no, plus a source and a time for cross-validation folds);
emits     `TopicModel`: named features, one weight each, an intercept and the alert threshold,
          saved as JSON beside the topic file (`<id>.model.json`) and loaded with it;
rejects   a model file that is not valid JSON or names features the topic does not have, with
          `ConfigError` naming the file and the fix (retrain with `newsmon topics train`).

Features are the topic's own words, so an explanation reads like the rules: for every rule, whether
it fired, whether the title or the lead alone satisfies it, how often it hit and how much of the
article it spreads over; the same for the topic's `vocabulary`; the similarity to the closest
exemplar; and the length of the text (a headline carries less evidence than an article). Chrome
was removed before any of this is counted.

The maths is scikit-learn's (`LogisticRegression`); scoring one article is a dot product over a
few dozen numbers, so it needs no scikit-learn at run time.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.topics.query import Node, evaluate_clause
from pipeline.topics.text import _ZONE_GAP as _TEXT_START
from pipeline.topics.text import _ZONE_SETS, _Doc

MODEL_VERSION = 1
PROFILES = ("about", "mentions")
PROFILE_WORDS = 300
# Short texts get their own copy of every feature (a headline weighs its evidence differently).
SHORT_COPIES = True
# ...and only those: a headline's evidence does not move the weights articles are scored by (many
# one-clause headlines about a topic would otherwise teach that one clause makes an article about it).
SHORT_SEPARATE = True
SHORT_TEXT_WORDS = 40
_HEADLINE_ZONES = (("title", frozenset({"title"})), ("lead", frozenset({"title", "lead"})))


@dataclass(frozen=True)
class TopicModel:
    """A learned relevance model: P(about) = sigmoid(intercept + sum(weight x feature))."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float
    threshold: float  # P(about) at or above this alerts, for an article; chosen by cross-validation
    short_threshold: float  # the same for a headline or short feed entry (< SHORT_TEXT_WORDS words)
    fingerprint: str  # of the rules and vocabulary it was trained on
    # Word profiles of the labelled articles (unit TF-IDF vectors, the top PROFILE_WORDS words): what
    # an article about the topic, and one that only mentions it, tend to talk about.
    profiles: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict, compare=False, hash=False)
    trained: dict = field(default_factory=dict, compare=False, hash=False)  # counts, folds, figures
    # A short text is scored by the short: features alone (SHORT_SEPARATE when it was trained;
    # models from before it was added score short texts by all features, as they were fitted).
    short_separate: bool = False

    def contributions(self, values: dict[str, float]) -> list[tuple[str, float]]:
        if self.short_separate and values.get("short"):
            return [
                (f, w * values.get(f, 0.0))
                for f, w in zip(self.features, self.weights, strict=True)
                if f.startswith("short")
            ]
        return [(f, w * values.get(f, 0.0)) for f, w in zip(self.features, self.weights, strict=True)]

    def probability(self, values: dict[str, float]) -> float:
        z = self.intercept + sum(c for _, c in self.contributions(values))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def threshold_for(self, short: bool) -> float:
        return self.short_threshold if short else self.threshold

    def to_json(self) -> dict:
        return {
            "version": MODEL_VERSION,
            "fingerprint": self.fingerprint,
            "threshold": round(self.threshold, 4),
            "short_threshold": round(self.short_threshold, 4),
            "intercept": round(self.intercept, 6),
            "weights": {f: round(w, 6) for f, w in zip(self.features, self.weights, strict=True)},
            "profiles": {k: {w: round(v, 5) for w, v in p} for k, p in self.profiles.items()},
            "trained": self.trained,
            "short_separate": self.short_separate,
        }


def fingerprint(rules: Sequence[tuple[str, str, str]], vocabulary: str) -> str:
    """A short hash of (name, query, zone) of every rule and the vocabulary query."""
    blob = json.dumps([list(r) for r in rules] + [vocabulary], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class StaleModel(Exception):
    """The model was trained on rules the topic no longer has: it cannot be applied."""


def load_model(path: Path, feature_names: Sequence[str]) -> TopicModel:
    where = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != MODEL_VERSION:
            raise ConfigError(
                f"model version {data.get('version')!r} is not {MODEL_VERSION}; retrain it with "
                "`newsmon topics train`",
                path=where,
            )
        weights = data["weights"]
        unknown = sorted(set(weights) - set(feature_names))
        if unknown:
            raise StaleModel(
                f"{where}: the model uses features the topic no longer has ({', '.join(unknown[:3])}): a rule was "
                "renamed or removed; the topic scores by its rules alone until you retrain it with "
                "`newsmon topics train`"
            )
        return TopicModel(
            features=tuple(weights),
            weights=tuple(float(w) for w in weights.values()),
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            short_threshold=float(data.get("short_threshold", data["threshold"])),
            fingerprint=str(data.get("fingerprint", "")),
            profiles={k: tuple(sorted(v.items())) for k, v in data.get("profiles", {}).items()},
            trained=data.get("trained", {}),
            short_separate=bool(data.get("short_separate", False)),
        )
    except OSError as e:
        raise ConfigError(f"cannot read the topic model: {e.strerror or e}", path=where) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(
            f"not a topic model ({e}); retrain it with `newsmon topics train` or delete the file", path=where
        ) from None


# ---------------------------------------------------------------------------------------------
# Features.


def feature_names(rule_names: Sequence[str], has_vocabulary: bool) -> tuple[str, ...]:
    names = [f"{r}:{k}" for r in rule_names for k in _CLAUSE_KEYS]
    if has_vocabulary:
        names += [f"vocabulary:{k}" for k in _CLAUSE_KEYS]
    names += ["exemplar", *(f"profile:{p}" for p in PROFILES), *PASSAGE_FEATURES]
    # A headline carries less text to weigh: the same evidence gets its own weights there.
    return (*names, *(f"short:{n}" for n in names if SHORT_COPIES), "short")


# The densest passage of the text: a long briefing or transcript can be about a topic for one
# paragraph and about other things for the rest, which whole-text features dilute.
PASSAGE_WORDS = 100  # "roughly a paragraph", as the labelling guide puts it
PASSAGE_FEATURES = ("passage:rules", "passage:vocabulary", "passage:share")

_CLAUSE_KEYS = ("fired", "title", "lead", "hits", "spread", "early", "paragraphs", "peak")


def _paragraph_of(doc: _Doc) -> tuple[list[int], int]:
    """Newline offsets of the text (to find a word's paragraph) and the number of paragraphs."""
    breaks = [i for i, ch in enumerate(doc.text) if ch == "\n"]
    return breaks, len(breaks) + 1


def clause_features(
    doc: _Doc, node: Node, zone: str, paragraphs: tuple[list[int], int], where: list[int] | None = None
) -> dict[str, float]:
    """What one query shows in one article: fired, title, lead, hits, spread (see module doc).
    `where`, if given, receives the text position (in words) of every occurrence outside the title."""
    result = evaluate_clause(node, doc, _ZONE_SETS[zone])
    if not result.matched:
        return {}
    out = {"fired": 1.0, "hits": math.log1p(result.hits)}
    for name, visible in _HEADLINE_ZONES:
        probe = dataclasses.replace(doc, visible=visible)
        if evaluate_clause(node, probe, _ZONE_SETS[zone] & visible).matched:
            out[name] = 1.0
    breaks, count = paragraphs
    seen: set[int] = set()
    per_paragraph: dict[int, int] = {}
    earliest = None
    for occ in result.occurrences:
        first = occ[0][0]
        if doc.zones[first] == "title":
            continue
        if where is not None:
            where.append(doc.positions[first])
        para = bisect.bisect_left(breaks, doc.starts[first])
        seen.add(para)
        per_paragraph[para] = per_paragraph.get(para, 0) + 1
        earliest = first if earliest is None else min(earliest, first)
    # How early in the text the clause first holds (1 at the first word, 0 at the end), and in how
    # many paragraphs: an article about a topic comes to it early and keeps returning to it.
    if earliest is not None and doc.words_in_text:
        offset = doc.positions[earliest] - _TEXT_START
        out["early"] = max(0.0, 1.0 - offset / doc.words_in_text)
    if seen:
        out["paragraphs"] = math.log1p(len(seen))
        # The most the clause holds in one paragraph: "about" is a paragraph or more on the topic.
        out["peak"] = math.log1p(max(per_paragraph.values()))
    # Share of the paragraphs the clause appears in, and at least one paragraph's worth: a
    # headline that fires is all "spread".
    out["spread"] = min(1.0, len(seen) / min(count, 8)) if seen else (1.0 if out.get("title") else 0.0)
    return out


def passage_features(rules: dict[str, list[int]], vocabulary: list[int]) -> dict[str, float]:
    """The densest PASSAGE_WORDS-word stretch of the text: the share of the topic's rules that hold
    in it, how many times the vocabulary does (log), and that stretch's share of all the
    vocabulary's hits. Positions are the word offsets of occurrences outside the title."""
    out: dict[str, float] = {}
    events = sorted((pos, name) for name, found in rules.items() for pos in found)
    if events and rules:
        best, lo, seen = 0, 0, Counter()
        for hi in range(len(events)):
            seen[events[hi][1]] += 1
            while events[hi][0] - events[lo][0] >= PASSAGE_WORDS:
                seen[events[lo][1]] -= 1
                if not seen[events[lo][1]]:
                    del seen[events[lo][1]]
                lo += 1
            best = max(best, len(seen))
        out["passage:rules"] = best / len(rules)
    if vocabulary:
        found = sorted(vocabulary)
        best, lo = 0, 0
        for hi in range(len(found)):
            while found[hi] - found[lo] >= PASSAGE_WORDS:
                lo += 1
            best = max(best, hi - lo + 1)
        out["passage:vocabulary"] = math.log1p(best)
        out["passage:share"] = best / len(found)
    return out


def short_text(doc: _Doc) -> float:
    return 1.0 if doc.words_in_text < SHORT_TEXT_WORDS else 0.0
