"""Topic definitions and topic matching.

Contract
--------
consumes  a directory of topic files (``*.yaml``, one topic each, format in seeds/TOPICS.md) and,
          per article, its doc id, title and main text;
emits     one ``TopicMatch`` per topic whose score reaches the topic's ``mention_threshold``:
          level "alert" when the score reaches ``alert_threshold`` (the article is about the topic),
          else "mention". Each match carries one ``Evidence`` per rule clause and zone that fired
          and one for the closest exemplar;
rejects   a bad topic file with ``ConfigError`` naming the file, the line and the fix: unknown keys,
          a query that does not parse, a missing exemplar file, thresholds out of order, duplicate
          ids or rule names.

Scoring (the same arithmetic `explain` prints)
-------
rules     every clause that fires adds ``weight x prominence x repetition``:
          prominence 1.5 when the title alone satisfies the clause, 1.25 when the title and lead
          do, else 1.0; repetition 1 + 0.5*log2(hits), at most 2, where hits are counted per
          ~500 words so a long article's passing remarks do not add up to being about the topic.
exemplars ``exemplar_weight x cosine`` of the article against its closest exemplar (TF-IDF with
          wordfreq's Zipf frequencies as background IDF, so a handful of exemplars suffice).
score     min(1, rules + exemplars), but 0 when no clause fired: exemplars refine what the rules
          found; alone they would flag every article about the same people and places.

Site chrome ("Related: ...", "Share this", cookie notices, navigation lists) is removed by
`strip_chrome` before anything is matched, so boilerplate can never trigger a match.

Everything compiled here is a frozen dataclass of plain values, so a `Topic` pickles (Beam ships
the list to its workers).
"""


from __future__ import annotations

import dataclasses
import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wordfreq import zipf_frequency

from pipeline.models import Evidence, TopicMatch
from pipeline.topics.learn import SHORT_COPIES, _paragraph_of, clause_features, passage_features, short_text
from pipeline.topics.query import Occurrence, evaluate_clause
from pipeline.topics.text import (  # noqa: F401
    _IDF_CEILING,
    _ZONE_RANK,
    _ZONE_SETS,
    HITS_PER_WORDS,
    PROMINENCE,
    REPETITION_CAP,
    _build_doc,
    _Doc,
    _words,
    strip_chrome,
)
from pipeline.topics.topic import Rule, Topic

# ---------------------------------------------------------------------------------------------
# Exemplar similarity.


# Cached: the same few thousand words recur in every article, and the lookup is the hot path.
@functools.lru_cache(maxsize=200_000)
def _idf(word: str) -> float:
    return max(0.0, _IDF_CEILING - zipf_frequency(word, "en"))


def _is_content(word: str) -> bool:
    # Numbers and single letters ("a", "I", a stray "s") say nothing about a topic.
    return len(word) > 1 and not word.isdigit()


def _weights(words: Sequence[str]) -> dict[str, float]:
    counts = Counter(w for w in words if _is_content(w))
    vec = {w: (1.0 + math.log(c)) * _idf(w) for w, c in counts.items()}
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {w: v / norm for w, v in vec.items() if v > 0} if norm else {}


def _exemplar_vector(text: str) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(_weights([w for w, _, _ in _words(strip_chrome(text))]).items()))


@dataclass(frozen=True)
class _Similarity:
    exemplar: str
    cosine: float
    shared: tuple[str, ...]  # the words contributing most, as they appear in the article


def _closest_exemplar(doc: _Doc, topic: Topic, doc_vec: dict[str, float]) -> _Similarity | None:
    best: _Similarity | None = None
    for ex in topic.exemplars:
        contrib = {w: v * doc_vec[w] for w, v in ex.vector if w in doc_vec}
        cosine = sum(contrib.values())
        if cosine > 0 and (best is None or cosine > best.cosine):
            top = sorted(contrib, key=lambda w: -contrib[w])[:8]
            best = _Similarity(ex.id, cosine, tuple(_first_surface(doc, w) for w in top))
    return best


def _first_surface(doc: _Doc, norm: str) -> str:
    i = doc.index[norm][0]
    return doc.surface(i, i)


# ---------------------------------------------------------------------------------------------
# Scoring.


@dataclass(frozen=True)
class _ClauseScore:
    rule: Rule
    hits: int
    prominence: str  # the most prominent zone that satisfies the clause on its own
    repetition: float
    score: float
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True)
class _Decision:
    score: float
    level: str | None  # "alert", "mention" or None (below mention_threshold)
    clauses: tuple[_ClauseScore, ...]
    rule_score: float
    similarity: _Similarity | None
    exemplar_score: float
    learned: _Learned | None = None


@dataclass(frozen=True)
class _Learned:
    """What the topic's model made of the article."""

    probability: float
    threshold: float
    gate_open: bool  # a required rule fired (no alert without one)
    contributions: tuple[tuple[str, float], ...]  # (feature, weight x value), largest effect first


def _prominence(doc: _Doc, rule: Rule) -> str:
    """'title' if the title alone satisfies the clause, 'lead' if title+lead do, else 'body'."""
    for zone, visible in (("title", frozenset({"title"})), ("lead", frozenset({"title", "lead"}))):
        probe = dataclasses.replace(doc, visible=visible)
        if evaluate_clause(rule.node, probe, _ZONE_SETS[rule.zone] & visible).matched:
            return zone
    return "body"


def _repetition(hits: int, doc: _Doc) -> float:
    per_length = hits * min(1.0, HITS_PER_WORDS / max(doc.words_in_text, 1))
    return min(REPETITION_CAP, 1.0 + 0.5 * math.log2(max(1.0, per_length)))


def _clause_evidence(doc: _Doc, rule: Rule, occurrences: Sequence[Occurrence]) -> tuple[Evidence, ...]:
    """One Evidence per zone the clause's words were found in, title first."""
    by_zone: dict[str, list[str]] = {}
    for first, last in sorted({p for occ in occurrences for p in occ}):
        spans = by_zone.setdefault(doc.zones[first], [])
        text = doc.surface(first, last)
        if text not in spans:
            spans.append(text)
    detail = f"{rule.name}: {rule.query}"
    zones = sorted(by_zone, key=lambda z: -_ZONE_RANK[z]) or ["body"]
    return tuple(Evidence("rule", detail, z, tuple(by_zone.get(z, ()))) for z in zones)


def _score_clause(doc: _Doc, rule: Rule) -> _ClauseScore | None:
    result = evaluate_clause(rule.node, doc, _ZONE_SETS[rule.zone])
    if not result.matched:
        return None
    prominence = _prominence(doc, rule)
    repetition = _repetition(result.hits, doc)
    score = rule.weight * PROMINENCE[prominence] * repetition
    return _ClauseScore(
        rule, result.hits, prominence, repetition, score, _clause_evidence(doc, rule, result.occurrences)
    )


def _decide(doc: _Doc, topic: Topic, doc_vec: Callable[[], dict[str, float]] | None = None) -> _Decision:
    clauses = tuple(c for c in (_score_clause(doc, r) for r in topic.rules) if c is not None)
    rule_score = sum(c.score for c in clauses)
    similarity = None
    exemplar_score = 0.0
    if clauses and topic.exemplars and topic.exemplar_weight > 0:
        vec = doc_vec() if doc_vec else _doc_vector(doc)
        similarity = _closest_exemplar(doc, topic, vec)
        exemplar_score = topic.exemplar_weight * similarity.cosine if similarity else 0.0
    score = round(min(1.0, rule_score + exemplar_score), 4) if clauses else 0.0
    level = None
    if score >= topic.alert_threshold:
        level = "alert"
    elif score >= topic.mention_threshold:
        level = "mention"
    learned = None
    if topic.model is not None and clauses:
        learned = _learned(doc, topic, doc_vec)
        score = round(learned.probability, 4)
        if not learned.gate_open:  # none of the rules that carry the topic's sense fired
            level = None
        elif learned.probability >= learned.threshold:
            level = "alert"
        elif level == "alert":  # the rules alone would alert; the model says it only touches on it
            level = "mention"
    return _Decision(score, level, clauses, rule_score, similarity, exemplar_score, learned)


def _learned(doc: _Doc, topic: Topic, doc_vec: Callable[[], dict[str, float]] | None) -> _Learned:
    model = topic.model
    assert model is not None
    values = topic_features(doc, topic, doc_vec)
    required = topic.require or tuple(r.name for r in topic.rules)
    contributions = sorted(
        ((f, c) for f, c in model.contributions(values) if abs(c) >= 0.005), key=lambda fc: -abs(fc[1])
    )
    return _Learned(
        probability=model.probability(values),
        threshold=model.threshold_for(bool(values.get("short"))),
        gate_open=any(values.get(f"{r}:fired") for r in required),
        contributions=tuple(contributions),
    )



def _doc_vector(doc: _Doc) -> dict[str, float]:
    return _weights(doc.norms)


def _lazy(make: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
    cell: list[dict[str, float]] = []

    def get() -> dict[str, float]:
        if not cell:
            cell.append(make())
        return cell[0]

    return get


def _evidence(decision: _Decision) -> tuple[Evidence, ...]:
    evidence = [e for c in decision.clauses for e in c.evidence]
    sim = decision.similarity
    if sim is not None:
        evidence.append(
            Evidence("exemplar", f"{sim.exemplar} similarity {sim.cosine:.2f}", "body", sim.shared)
        )
    learned = decision.learned
    if learned is not None:
        evidence.append(
            Evidence(
                "model",
                f"P(about) {learned.probability:.2f}, alert at {learned.threshold:.2f}"
                + ("" if learned.gate_open else "; no required rule fired"),
                "any",
                tuple(f"{f} {c:+.2f}" for f, c in learned.contributions[:6]),
            )
        )
    return tuple(evidence)


def match_article(doc_id: str, title: str, text: str, topics: Sequence[Topic]) -> list[TopicMatch]:
    """Match one article against every topic; one TopicMatch per topic at or above its mention_threshold."""
    doc = _build_doc(title, text)
    doc_vec = _lazy(lambda: _doc_vector(doc))  # computed once, and only if some rule fires
    matches = []
    for topic in topics:
        decision = _decide(doc, topic, doc_vec)
        if decision.level is not None:
            matches.append(TopicMatch(doc_id, topic.id, decision.score, decision.level, _evidence(decision)))
    return matches


def should_alert(match: TopicMatch, topic: Topic) -> bool:
    """Whether a match should raise an alert: always at level "alert", at "mention" only when the
    topic sets ``alert_on_mentions``. The level itself stays what the score says."""
    return match.level == "alert" or (topic.alert_on_mentions and match.level == "mention")


def check_examples(topic: Topic) -> list[str]:
    """Run a topic's own examples: must_match must alert, must_not_match must not. Returns failures."""
    failures = []
    for kind, examples, want_alert in (
        ("must_match", topic.must_match, True),
        ("must_not_match", topic.must_not_match, False),
    ):
        for n, ex in enumerate(examples, 1):
            decision = _decide(_build_doc(ex.title, ex.text), topic)
            if (decision.level == "alert") != want_alert:
                failures.append(
                    f"{topic.id}: {kind} example {n} scored {decision.score:.2f} ({decision.level or 'no match'}), "
                    f"{'needs' if want_alert else 'must stay below'} alert {topic.alert_threshold:.2f}: "
                    f"{_clip(ex.title + ' ' + ex.text)}"
                )
    return failures


def _clip(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def explain(title: str, text: str, topic: Topic) -> str:
    """A readable account of how `topic` scores this article: chrome, lead, every clause, exemplars."""
    doc = _build_doc(title, text)
    d = _decide(doc, topic)
    out = [
        f"topic {topic.id}: score {d.score:.2f} -> {d.level or 'no match'} "
        f"(alert >= {topic.alert_threshold:.2f}, mention >= {topic.mention_threshold:.2f})",
        f"  title: {_clip(doc.title) or '(none)'}",
        f"  lead:  {_clip(doc.text[doc.lead[0] : doc.lead[1]], 160) or '(none)'}",
        f"  chrome lines removed: {doc.dropped_lines}; words in text: {doc.words_in_text}",
        f"  rules: {d.rule_score:.2f}",
    ]
    fired = {c.rule.name: c for c in d.clauses}
    for rule in topic.rules:
        c = fired.get(rule.name)
        if c is None:
            out.append(f"    -     {rule.name}: no match  [{rule.query}]")
            continue
        out.append(
            f"    fired {rule.name}: {c.score:.2f} = weight {rule.weight:g} x {c.prominence} "
            f"{PROMINENCE[c.prominence]:g} x repetition {c.repetition:.2f} ({c.hits} hit{'s' * (c.hits != 1)})"
        )
        for e in c.evidence:
            out.append(f"          {e.zone}: {', '.join(repr(s) for s in e.spans) or '(no words)'}")
    if not d.clauses:
        out.append("  exemplars: not consulted (no rule fired)")
    elif d.similarity is None:
        out.append("  exemplars: +0.00 (none similar)")
    else:
        s = d.similarity
        out.append(
            f"  exemplars: +{d.exemplar_score:.2f} = weight {topic.exemplar_weight:g} x similarity "
            f"{s.cosine:.2f} to {s.exemplar}; shared: {', '.join(s.shared)}"
        )
    if topic.model is None:
        out.append("  model: none (rules and exemplars score; train one with `newsmon topics train`)")
    elif d.learned is None:
        out.append("  model: not consulted (no rule fired)")
    else:
        m = d.learned
        stale = " (trained on other rules: retrain)" if topic.model_stale else ""
        out.append(
            f"  model{stale}: P(about) {m.probability:.2f} against alert threshold {m.threshold:.2f}"
            + ("" if m.gate_open else f"; no alert: none of the required rules fired ({', '.join(topic.require)})")
        )
        out.append(f"    intercept {topic.model.intercept:+.2f}")
        for f, c in m.contributions[:12]:
            out.append(f"    {c:+.2f}  {f}")
    return "\n".join(out)



# ---------------------------------------------------------------------------------------------
# Features for the learned model (pipeline/topics/learn.py).


def topic_features(doc: _Doc, topic: Topic, doc_vec: Callable[[], dict[str, float]] | None = None) -> dict[str, float]:
    """The named feature values of one article for one topic; absent names are 0."""
    paragraphs = _paragraph_of(doc)
    out: dict[str, float] = {}
    clauses = [(r.name, r) for r in topic.rules]
    if topic.vocabulary is not None:
        clauses.append(("vocabulary", topic.vocabulary))
    where: dict[str, list[int]] = {}
    for name, rule in clauses:
        found = where.setdefault(name, [])
        for key, value in clause_features(doc, rule.node, rule.zone, paragraphs, found).items():
            out[f"{name}:{key}"] = value
    vocabulary = where.pop("vocabulary", [])
    out.update(passage_features({r.name: where[r.name] for r in topic.rules}, vocabulary))
    vec = doc_vec() if doc_vec else _doc_vector(doc)
    if topic.exemplars:
        sim = _closest_exemplar(doc, topic, vec)
        if sim is not None:
            out["exemplar"] = sim.cosine
    if topic.model is not None:
        for name, profile in topic.model.profiles.items():
            out[f"profile:{name}"] = sum(v * vec.get(w, 0.0) for w, v in profile)
    if short_text(doc):
        if SHORT_COPIES:
            out.update({f"short:{k}": v for k, v in out.items()})
        out["short"] = 1.0
    return out
