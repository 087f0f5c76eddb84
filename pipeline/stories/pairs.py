"""The pair model of the rewrite rung: is this document the same event as that story member?

A pair of documents is described by a few general features (below), and a logistic regression
turns them into a probability. The rewrite rung averages that probability over a story's
members (average link: stories do not chain) and joins the story when the average reaches the
model's threshold; the assignment's score is that average. (Averaging the log-odds instead was
tried: out of fold on ECB+, B-cubed F1 0.800 against 0.838.)

The features say *how much the texts share* (a TF-IDF cosine per space: the lead, names and
numbers, adjacent word pairs, content words) and *what tells one event from another of the same
kind* (two earthquakes in one region, two arrests of one man years apart): years that differ,
numbers in the leads that differ, lead names one text has and the other lacks, weekdays and
months of the leads that differ, and a protagonist (the person a text is about, from how its
names are written: pipeline/stories/people.py) that the other text never names - two arrests of
different players of one team share everything else. None names a document, a place or a topic.

Two models share the features: ``long`` for pairs of full articles, ``short`` when either text
has fewer than `DedupSettings.min_rewrite_terms` content words (a feed entry, a page whose
extraction gave only a headline and a lead), where the shared words weigh differently.

The model is data with a version: `pair_model.json` beside this file holds the coefficients (on
the raw features), the threshold of each model and the cross-validated figures they were chosen
with. `python -m pipeline.stories.train` fits it again (see that module).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.stories.text import term_id

MODEL_PATH = Path(__file__).with_name("pair_model.json")
# No time feature. "Both dated" would learn which corpus a pair came from (every 2025 entry is
# dated, no ECB+ article is) and penalise every dated pair of a live stream. The time between the
# two publications was tried: its only labelled pairs are entries of one day, so it learned
# -15 per log-day and kept a rewrite published a day later out of its story. The time window
# (`window_days`) stays the rule for time until there is labelled data across days.
MODEL_VERSION = 3   # 2: protagonist_missing; 3: a short text's names also by prefix (settings.short_name_prefix)

FEATURES = (
    "cos_lead",            # cosine of the title + first lines (words and names)
    "cos_names",           # cosine of capitalised words and numbers
    "cos_pairs",           # cosine of adjacent content-word pairs
    "cos_words",           # cosine of content words
    "years_disjoint",      # both texts name years, and none in common
    "years_shared",        # the texts name a year in common
    "lead_numbers_disjoint",  # both leads hold numbers, and none in common (magnitude 6.1 vs 5.4)
    "numbers_jaccard",     # Jaccard of all the numbers, when both texts hold some
    "lead_names_missing",  # share of each lead's names the other text lacks (mean of both ways)
    "lead_weekdays_disjoint",  # both leads name a weekday (the event's day), and none in common
    "lead_months_disjoint",    # both leads name a month, and none in common
    "min_words_log",       # log(1 + content words of the shorter text); the short model only (train._LONG_WITHOUT)
    "protagonist_missing",  # both texts have a protagonist (people.py), and one text's is not among the other's names
)


_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH_NAMES = (
    "january", "february", "march", "april", "june", "july", "august", "september", "october",
    "november", "december",   # "may" is left out: a sentence's "May" is mostly the verb
)
# Facts hold term ids (pipeline.stories.text.term_id of the "n:" terms), so these are ids too.
WEEKDAYS = frozenset(term_id("n:" + d) for d in _WEEKDAY_NAMES)
MONTHS = frozenset(term_id("n:" + m) for m in _MONTH_NAMES)
# A number of one digit ("2 people", "3 days") is as common as a stop word: no event's mark.
_ONE_DIGIT = frozenset(term_id(f"n:#{d}") for d in range(10))


_CALENDAR = WEEKDAYS | MONTHS


@dataclass(frozen=True)
class PairFacts:
    """What the pair features need of one document (term ids of its "n:" terms), fixed when indexed."""

    years: frozenset[int]          # four-digit numbers 1900-2099 in the text (their values)
    numbers: frozenset[int]        # every number of two or more characters in the text (years included)
    lead_numbers: frozenset[int]   # numbers of the title and the first lines
    lead_names: frozenset[int]     # names (capitalised words) of the title and the first lines
    names: frozenset[int]          # every name of the text
    published: float | None
    content_words: int
    protagonist: frozenset[int] = frozenset()   # the id of its protagonist's name (pipeline/stories/people.py), if any


def facts_from_ids(
    *, lead_names, lead_numbers, names, numbers, years, published: float | None, content_words: int,
    protagonist=(),
) -> PairFacts:
    """The facts of a document from the ids of its terms (lead ids unsalted, as "n:" ids)."""
    return PairFacts(
        frozenset(years), frozenset(numbers) - _ONE_DIGIT, frozenset(lead_numbers) - _ONE_DIGIT,
        frozenset(lead_names), frozenset(names), published, content_words, frozenset(protagonist),
    )


def _missing(lead: frozenset[int], other: frozenset[int]) -> float | None:
    return sum(1 for n in lead if n not in other) / len(lead) if lead else None


def pair_features(cosines: tuple[float, float, float, float], a: PairFacts, b: PairFacts) -> np.ndarray:
    """The feature vector (in `FEATURES` order) of documents `a` and `b` with these space cosines."""
    both_years = bool(a.years) and bool(b.years)
    shared_year = bool(a.years & b.years)
    both_lead_numbers = bool(a.lead_numbers) and bool(b.lead_numbers)
    both_numbers = bool(a.numbers) and bool(b.numbers)
    missing = [
        m for m in (_missing(a.lead_names - _CALENDAR, b.names), _missing(b.lead_names - _CALENDAR, a.names))
        if m is not None
    ]
    days_a, days_b = a.lead_names & WEEKDAYS, b.lead_names & WEEKDAYS
    months_a, months_b = a.lead_names & MONTHS, b.lead_names & MONTHS
    return np.array(
        [
            *cosines,
            float(both_years and not shared_year),
            float(shared_year),
            float(both_lead_numbers and not (a.lead_numbers & b.lead_numbers)),
            len(a.numbers & b.numbers) / len(a.numbers | b.numbers) if both_numbers else 0.0,
            sum(missing) / len(missing) if missing else 0.0,
            float(bool(days_a) and bool(days_b) and not days_a & days_b),
            float(bool(months_a) and bool(months_b) and not months_a & months_b),
            math.log1p(min(a.content_words, b.content_words)),
            float(bool(a.protagonist) and bool(b.protagonist)
                  and not (a.protagonist <= b.names and b.protagonist <= a.names)),
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class LogisticModel:
    """One logistic regression on the raw features, and the average probability that joins a story."""

    coef: tuple[float, ...]
    intercept: float
    threshold: float
    # Features that, when 1, make the pair no event in common (probability 0) whatever the rest
    # says: a rule the regression does not weigh (`train._VETOES`; chosen out of fold).
    vetoes: tuple[str, ...] = ()

    def vetoed(self, features: np.ndarray) -> bool:
        return any(features[FEATURES.index(name)] >= 1.0 for name in self.vetoes)

    def log_odds(self, features: np.ndarray) -> float:
        """The model's log-odds that the pair reports one event: what a story averages."""
        return float(np.dot(self.coef, features)) + self.intercept

    def probability(self, features: np.ndarray) -> float:
        if self.vetoes and self.vetoed(features):
            return 0.0
        z = self.log_odds(features)
        return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0

    def explain(self, features: np.ndarray) -> dict[str, float]:
        """Each feature's share of the log-odds, for an analyst reading a decision."""
        return {name: round(c * float(v), 4) for name, c, v in zip(FEATURES, self.coef, features, strict=True)}


@dataclass(frozen=True)
class PairModel:
    version: int
    long: LogisticModel
    short: LogisticModel

    def for_pair(self, a: PairFacts, b: PairFacts, min_terms: int) -> LogisticModel:
        return self.short if min(a.content_words, b.content_words) < min_terms else self.long


def model_from_dict(data: dict) -> PairModel:
    if data.get("version") != MODEL_VERSION or tuple(data.get("features", ())) != FEATURES:
        raise ValueError(
            f"{MODEL_PATH}: pair model version {data.get('version')} with features {data.get('features')} "
            f"does not match this code (version {MODEL_VERSION}); retrain: python -m pipeline.stories.train"
        )
    parts = {
        name: LogisticModel(
            tuple(float(c) for c in m["coef"]), float(m["intercept"]), float(m["threshold"]), tuple(m.get("vetoes", ())),
        )
        for name, m in data["models"].items()
    }
    return PairModel(int(data["version"]), parts["long"], parts["short"])


@lru_cache(maxsize=4)
def load_model(path: str = str(MODEL_PATH)) -> PairModel:
    """The pair model saved at `path` (read once per process)."""
    return model_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
