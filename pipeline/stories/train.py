"""Fit the pair model of the rewrite rung and measure it out of fold.

    python -m pipeline.stories.train            # cross-validate, fit on all dev data, write pair_model.json
    python -m pipeline.stories.train --check    # cross-validate only; print the figures

Data (the corpora folder, $NEWSMON_CORPORA): ECB+ dev (full articles, 8 topics of two events of
one kind) and the 2025 feed entries of topics-dev (headlines, several outlets per event, 5 days).
Rows are labelled pairs of documents and their features (pipeline/stories/pairs.py), computed in
an index of their own data set (so the IDF is that of the set):

* ECB+ full texts, and the same articles cut to their lead (title + first line) and to their title
  alone, for the short texts a feed entry or a failed extraction gives: every same-story and
  same-topic-different-story pair, and as many different-topic pairs (a fixed sample);
* the 2025 entries: every pair of entries of one day.

A pair goes to the ``short`` model when either text has fewer than `min_rewrite_terms` content
words, else to ``long``. Each is a logistic regression (scikit-learn, standardised features, L2,
C=1), stored as coefficients on the raw features; ``long`` leaves out the text length
(`_LONG_WITHOUT`, stored as coefficient 0). A veto (`_VETOES`: a protagonist of one text the other
never names) is a rule of the long model, not a weight: such a pair gets probability 0.

Nothing is chosen on the data it is scored on. Out of fold:

* ECB+: leave one topic out. The models are fitted on the other topics' pairs (and all 2025
  entries); the threshold of the average probability is the one that folds the other topics best
  (B-cubed F1 minus the same-topic false-merge rate); the held-out topic is then folded with that
  model and threshold. The headline figures pool the held-out predictions of the 8 folds.
* 2025 entries: leave one day out, likewise (threshold by pairwise F1 on the other days, each day
  folded on its own). Entries routed to ``long`` are judged at the median of the long thresholds
  the ECB+ folds chose, as the shipped model judges them at the one chosen on ECB+.

The saved model is fitted on all the data; its long threshold is the median of those the ECB+
folds chose, its short one chosen on all the days by the same rule as in the folds. Its in-sample
figures are reported beside the out-of-fold ones, which are the honest estimate.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.models import DedupDoc
from pipeline.parallel import in_processes
from pipeline.stories.index import StoryIndex, fold_stories
from pipeline.stories.pairs import FEATURES, MODEL_PATH, MODEL_VERSION, LogisticModel, PairModel
from pipeline.stories.settings import DedupSettings

# Thresholds of the average probability over a story's members.
LONG_GRID = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))    # 0.10 .. 0.90
SHORT_GRID = tuple(round(0.05 + 0.05 * i, 2) for i in range(18))   # 0.05 .. 0.90
C = 1.0
_CW: str | None = None   # "balanced" was tried: out of fold on ECB+ it chose worse thresholds (0.868 vs 0.891)


# ---------------------------------------------------------------------------------------------
# Data.


@dataclass(frozen=True)
class Dataset:
    name: str
    docs: list[DedupDoc]
    gold: dict[str, str]        # doc_id -> story
    group: dict[str, str]       # doc_id -> fold group (ECB+ topic, or day)
    pairs: list[tuple[str, str, int]]   # (a, b, same story)


def _ecb_rows(corpora: Path) -> tuple[list[dict], list[tuple[str, str, str]]]:
    folder = corpora / "stories"
    with open(folder / "ecbplus-dev.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    import csv

    with open(folder / "ecbplus-dev-pairs.csv", encoding="utf-8") as fh:
        pairs = [(r["doc_a"], r["doc_b"], r["label"]) for r in csv.DictReader(fh)]
    return rows, pairs


def _lead_text(text: str, lines: int) -> str:
    body = [line for line in text.splitlines() if line.strip()]
    return "\n".join(body[:lines])


def ecb_datasets(corpora: Path) -> list[Dataset]:
    """ECB+ dev as full texts, leads (title + first line) and titles, with its labelled pairs."""
    rows, labelled = _ecb_rows(corpora)
    rng = random.Random(11)
    hard = [(a, b, int(lab == "same_story")) for a, b, lab in labelled if lab != "diff_topic"]
    easy = [(a, b, 0) for a, b, lab in labelled if lab == "diff_topic"]
    pairs = hard + rng.sample(easy, min(len(easy), sum(1 for *_, y in hard if not y)))
    gold = {r["doc_id"]: r["story_id"] for r in rows}
    group = {r["doc_id"]: str(r["topic"]) for r in rows}
    out = []
    for name, cut in (("ecb_full", None), ("ecb_lead", 2), ("ecb_title", 1)):
        docs = [
            DedupDoc(
                doc_id=r["doc_id"],
                text=r["text"] if cut is None else _lead_text(r["text"], cut),
                title=r.get("title") or "",
                url=r.get("url") or "",
            )
            for r in rows
        ]
        out.append(Dataset(name, docs, gold, group, pairs))
    return out


def headline_docs(corpora: Path) -> tuple[list[DedupDoc], dict[str, str], dict[str, str]]:
    """The 2025 feed entries: documents (title + description), gold story, day."""
    path = corpora / "topics-dev" / "headlines-2025.jsonl"
    docs, gold, day = [], {}, {}
    with open(path, encoding="utf-8") as fh:
        for row in map(json.loads, fh):
            text = "\n".join(t for t in (row["title"], row.get("text") or "") if t.strip())
            docs.append(
                DedupDoc(
                    doc_id=row["id"], text=text, title=row["title"], url=row.get("url") or "",
                    published=datetime.fromisoformat(row["published"]), source=row.get("source") or "",
                )
            )
            gold[row["id"]] = row["story_id"]
            day[row["id"]] = row["published"][:10]
    return docs, gold, day


def headline_dataset(corpora: Path) -> Dataset:
    docs, gold, day = headline_docs(corpora)
    ids = [d.doc_id for d in docs]
    pairs = [
        (a, b, int(gold[a] == gold[b]))
        for i, a in enumerate(ids) for b in ids[i + 1 :] if day[a] == day[b]
    ]
    return Dataset("headlines", docs, gold, day, pairs)


@dataclass(frozen=True)
class Rows:
    X: np.ndarray
    y: np.ndarray
    short: np.ndarray        # routed to the short model
    dataset: np.ndarray      # dataset name per row
    group_a: np.ndarray      # fold group of each document of the pair
    group_b: np.ndarray


def feature_rows(sets: list[Dataset], settings: DedupSettings) -> Rows:
    """The pair features of every labelled pair, each set indexed on its own (its own IDF)."""
    plain = replace(settings, use_pair_model=False)
    X, y, short, names, ga, gb = [], [], [], [], [], []
    for ds in sets:
        index = StoryIndex(plain)
        index.observe(ds.docs)
        for doc in ds.docs:
            index.add(doc, story_id=ds.gold[doc.doc_id])
        for a, b, same in ds.pairs:
            f = index.pair_features_of(a, b)
            X.append(f)
            y.append(same)
            words = min(index.content_words_of(a), index.content_words_of(b))
            short.append(words < settings.min_rewrite_terms)
            names.append(ds.name)
            ga.append(ds.group[a])
            gb.append(ds.group[b])
    return Rows(np.array(X), np.array(y), np.array(short), np.array(names), np.array(ga), np.array(gb))


# ---------------------------------------------------------------------------------------------
# Fitting.


def _fit_one(X: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    lr = LogisticRegression(C=C, max_iter=2000, class_weight=_CW).fit((X - scaler.mean_) / scale, y)
    coef = lr.coef_[0] / scale
    intercept = float(lr.intercept_[0] - np.dot(coef, scaler.mean_))
    return tuple(float(c) for c in coef), intercept


# The long model does not see text length: its labelled full articles (ECB+, 9-368 content words)
# taught it a slope per log-word that a live stream's longer articles would extrapolate (with it,
# a 206-word rewrite of a seed article fell from probability 0.67 to 0.47).
_LONG_WITHOUT = frozenset({"min_words_log"})
# Rules of the long model, not weights: a pair whose protagonists conflict (pipeline/stories/people.py)
# gets probability 0. As a weight the regression could learn it only from the one ECB+ dev topic
# where nothing else tells the events apart (two players' arrests), so leaving that topic out
# left it at a third of its weight; as a rule it costs the few same-event pairs it fires on.
_VETOES: tuple[str, ...] = tuple(f for f in ("protagonist_missing",) if f in FEATURES)
_WITHOUT = {"long": _LONG_WITHOUT | frozenset(_VETOES), "short": frozenset(_VETOES)}


def fit_models(rows: Rows, mask: np.ndarray) -> PairModel:
    """Both logistic regressions on the rows of `mask` (thresholds 0.5 until chosen)."""
    parts = {}
    for name, routed in (("long", ~rows.short), ("short", rows.short)):
        m = mask & routed
        keep = np.array([f not in _WITHOUT[name] for f in FEATURES])
        sub, intercept = _fit_one(rows.X[m][:, keep], rows.y[m])
        coef = np.zeros(len(FEATURES))
        coef[keep] = sub
        parts[name] = LogisticModel(tuple(float(c) for c in coef), intercept, 0.5, _VETOES if name == "long" else ())
    return PairModel(MODEL_VERSION, parts["long"], parts["short"])


def with_thresholds(model: PairModel, long: float | None = None, short: float | None = None) -> PairModel:
    return PairModel(
        model.version,
        replace(model.long, threshold=model.long.threshold if long is None else long),
        replace(model.short, threshold=model.short.threshold if short is None else short),
    )


# ---------------------------------------------------------------------------------------------
# Scores (the same definitions as pipeline/evaluate.py).


def bcubed_f1(predicted: dict[str, str], gold: dict[str, str], items: list[str]) -> float:
    by_pred: dict[str, set[str]] = defaultdict(set)
    by_gold: dict[str, set[str]] = defaultdict(set)
    for i in items:
        by_pred[predicted[i]].add(i)
        by_gold[gold[i]].add(i)
    p = sum(len(by_pred[predicted[i]] & by_gold[gold[i]]) / len(by_pred[predicted[i]]) for i in items) / len(items)
    r = sum(len(by_pred[predicted[i]] & by_gold[gold[i]]) / len(by_gold[gold[i]]) for i in items) / len(items)
    return 2 * p * r / (p + r) if p + r else 0.0


def pair_counts(predicted: dict[str, str], pairs: list[tuple[str, str, int]]) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for a, b, same in pairs:
        joined = predicted[a] == predicted[b]
        tp += joined and same
        fp += joined and not same
        fn += same and not joined
    return tp, fp, fn


def f1_of(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


MERGE_COST = 2.0   # a false merge hides a story from its readers: it costs twice a point of B-cubed F1


def _ecb_objective(predicted: dict[str, str], ds: Dataset, topics: set[str]) -> float:
    """B-cubed F1 over the documents of `topics`, minus MERGE_COST x their same-topic false-merge rate."""
    items = [d.doc_id for d in ds.docs if ds.group[d.doc_id] in topics]
    hard = [(a, b) for a, b, same in ds.pairs if not same and ds.group[a] == ds.group[b] and ds.group[a] in topics]
    merges = sum(predicted[a] == predicted[b] for a, b in hard) / len(hard) if hard else 0.0
    return bcubed_f1(predicted, ds.gold, items) - MERGE_COST * merges


def fold_ecb(ds: Dataset, model: PairModel, settings: DedupSettings) -> dict[str, str]:
    return {a.doc_id: a.story_id for a in fold_stories(ds.docs, settings, pair_model=model)}


def _adds_only(settings: DedupSettings) -> DedupSettings:
    """Thresholds are chosen on folding by adds alone, without the end-of-batch merge of stories
    (`StoryIndex.merge_new_stories`), which then applies the chosen threshold. Chosen with the merge
    in the loop, the training topics pulled the long threshold down to where merges join two
    events of one kind (out of fold on ECB+: B-cubed 0.903 and 5.3% false merges, against 0.921
    and 0.9% this way; quality/README.md)."""
    return replace(settings, merge_stories=False)


def choose_long(ds: Dataset, model: PairModel, settings: DedupSettings, topics: set[str]) -> float:
    """The long threshold that folds `topics` of `ds` best (adds alone)."""
    adds = _adds_only(settings)
    runs = {t: fold_ecb(ds, with_thresholds(model, long=t), adds) for t in LONG_GRID}
    scores = [_ecb_objective(runs[t], ds, topics) for t in LONG_GRID]
    best = _smoothed_best(scores)
    # Higher thresholds that fold the training data exactly as the chosen one are equal on it;
    # take the highest of them: a false merge costs more than a split (MERGE_COST), and the
    # margin is what a stream of one long-running subject (the same leaders in every article,
    # a young index whose IDF has not learnt that yet) needs.
    # Only the documents of `topics` are compared: a held-out topic must not steer the choice.
    seen = [d.doc_id for d in ds.docs if ds.group[d.doc_id] in topics]

    def alike(a: float, b: float) -> bool:
        return all(runs[a][d] == runs[b][d] for d in seen)

    while best + 1 < len(LONG_GRID) and alike(LONG_GRID[best + 1], LONG_GRID[best]):
        best += 1
    return LONG_GRID[best]


def _smoothed_best(scores: list[float]) -> int:
    """The grid point whose score, averaged with its neighbours', is best (ties: the higher point).

    Folding is a chain of discrete decisions, so the score jumps between neighbouring thresholds;
    a lone spike on the training folds is luck that does not carry to the held-out one.
    """
    n = len(scores)
    smooth = [sum(scores[max(0, i - 1) : i + 2]) / len(scores[max(0, i - 1) : i + 2]) for i in range(n)]
    return max(range(n), key=lambda i: (round(smooth[i], 6), i))


def fold_days(ds: Dataset, model: PairModel, settings: DedupSettings, days: set[str]) -> dict[str, str]:
    """Each day of `days` folded on its own."""
    predicted: dict[str, str] = {}
    for day in sorted(days):
        docs = [d for d in ds.docs if ds.group[d.doc_id] == day]
        predicted.update({a.doc_id: a.story_id for a in fold_stories(docs, settings, pair_model=model)})
    return predicted


def choose_short(ds: Dataset, model: PairModel, settings: DedupSettings, days: set[str]) -> float:
    pairs = [p for p in ds.pairs if ds.group[p[0]] in days]

    adds = _adds_only(settings)

    def score(t: float) -> float:
        return f1_of(*pair_counts(fold_days(ds, with_thresholds(model, short=t), adds, days), pairs))

    return SHORT_GRID[_smoothed_best([score(t) for t in SHORT_GRID])]


# ---------------------------------------------------------------------------------------------
# Cross-validation and the final fit.


def _held_out_topic(topic: str, rows: Rows, full: Dataset, settings: DedupSettings,
                    topics: tuple[str, ...]) -> tuple[str, float, dict[str, str]]:
    """One ECB+ fold: the pair model fitted without `topic`, its long threshold chosen on the other
    topics, and the stories its documents get at that threshold."""
    is_head = rows.dataset == "headlines"
    model = fit_models(rows, is_head | ((rows.group_a != topic) & (rows.group_b != topic)))
    t = choose_long(full, model, settings, set(topics) - {topic})
    folded = fold_ecb(full, with_thresholds(model, long=t), settings)
    return topic, t, {d.doc_id: folded[d.doc_id] for d in full.docs if full.group[d.doc_id] == topic}


def _held_out_day(day: str, rows: Rows, heads: Dataset, settings: DedupSettings, days: tuple[str, ...],
                  long_threshold: float) -> tuple[str, float, dict[str, str]]:
    """One 2025 fold: the pair model fitted without `day`, its short threshold chosen on the other
    days, and that day's entries folded with it."""
    is_head = rows.dataset == "headlines"
    model = with_thresholds(fit_models(rows, ~is_head | ((rows.group_a != day) & (rows.group_b != day))),
                            long=long_threshold)
    t = choose_short(heads, model, settings, set(days) - {day})
    return day, t, fold_days(heads, with_thresholds(model, short=t), settings, {day})


def cross_validate(
    corpora: Path,
    settings: DedupSettings = DedupSettings(),  # noqa: B008 - frozen dataclass
    log=print,
    final: bool = True,
    processes: int | None = None,
) -> dict[str, Any]:
    """Out-of-fold figures of the whole procedure (fit + threshold choice), and (with `final`) the
    model fitted on all the data with its in-sample figures. The held-out folds run on
    `processes` worker processes (default: one per core); the figures do not depend on it."""
    started = time.perf_counter()
    ecb = ecb_datasets(corpora)
    heads = headline_dataset(corpora)
    rows = feature_rows([*ecb, heads], settings)
    full = ecb[0]
    topics = sorted(set(full.group.values()))
    days = sorted(set(heads.group.values()))
    log(f"pair rows: {len(rows.y)} ({int(rows.y.sum())} same story), {rows.short.sum()} short; "
        f"{time.perf_counter() - started:.1f}s")

    # ECB+: leave one topic out. The folds are independent: they run on `processes` processes.
    oof: dict[str, str] = {}
    per_topic = {}
    jobs = [(topic, rows, full, settings, tuple(topics)) for topic in topics]
    for topic, t, held in in_processes(_held_out_topic, jobs, processes):
        oof.update({doc_id: f"{topic}:{story}" for doc_id, story in held.items()})
        per_topic[topic] = t
        log(f"  ECB+ topic {topic} held out: long threshold {t}")
    ecb_oof = ecb_scores(oof, full)

    # 2025 entries: leave one day out. An entry of `min_rewrite_terms` content words or more is
    # judged by the long model, whose threshold comes from ECB+ alone (as the shipped one does):
    # the median of the thresholds the ECB+ folds chose, which saw no 2025 entry.
    long_for_heads = float(np.median(list(per_topic.values())))
    head_oof: dict[str, str] = {}
    per_day = {}
    jobs = [(day, rows, heads, settings, tuple(days), long_for_heads) for day in days]
    for day, t, held in in_processes(_held_out_day, jobs, processes):
        head_oof.update(held)
        per_day[day] = t
        log(f"  2025 day {day} held out: short threshold {t}")
    head_oof_scores = headline_scores(head_oof, heads)

    out_of_fold = {"ecb": ecb_oof, "headlines": head_oof_scores,
                   "thresholds": {"long_by_topic": per_topic, "short_by_day": per_day,
                                  "long_for_headlines": long_for_heads}}
    if not final:
        return {"rows": int(len(rows.y)), "out_of_fold": out_of_fold,
                "seconds": round(time.perf_counter() - started, 1)}
    # The final model: all rows. Its long threshold is the median of those the held-out folds
    # chose (as the 2025 entries' is above): the one rule on all the data picks the low end of
    # what the folds chose (0.45 of 0.40-0.55 once chrome took two other documents), where the
    # streamed and mixed ECB+ figures join two events of one kind more often (mixed false merges
    # 6.4% at 0.45, 5.3% at 0.50, 3.9% at 0.55), and the folds' spread is what the data says of
    # the threshold. The short threshold is chosen on all the days by the same rule as in the folds.
    model = fit_models(rows, np.ones(len(rows.y), dtype=bool))
    t_long = min(LONG_GRID, key=lambda t: (abs(t - long_for_heads), -t))
    t_short = choose_short(heads, with_thresholds(model, long=t_long), settings, set(days))
    model = with_thresholds(model, long=t_long, short=t_short)
    ecb_in = ecb_scores(fold_ecb(full, model, settings), full)
    head_in = headline_scores(fold_days(heads, model, settings, set(days)), heads)
    return {
        "model": model,
        "rows": int(len(rows.y)),
        "out_of_fold": out_of_fold,
        "in_sample": {"ecb": ecb_in, "headlines": head_in},
        "seconds": round(time.perf_counter() - started, 1),
    }


def ecb_scores(predicted: dict[str, str], ds: Dataset) -> dict[str, float]:
    items = [d.doc_id for d in ds.docs]
    same_topic = [(a, b) for a, b, same in ds.pairs if not same and ds.group[a] == ds.group[b]]
    tp, fp, fn = pair_counts(predicted, [(a, b, s) for a, b, s in ds.pairs if ds.group[a] == ds.group[b]])
    return {
        "bcubed_f1": round(bcubed_f1(predicted, ds.gold, items), 4),
        "pairwise_f1": round(f1_of(tp, fp, fn), 4),
        "false_merge_rate": round(sum(predicted[a] == predicted[b] for a, b in same_topic) / len(same_topic), 4),
        "stories": len(set(ds.gold.values())),
        "predicted_stories": len({predicted[i] for i in items}),
    }


def headline_scores(predicted: dict[str, str], ds: Dataset) -> dict[str, float]:
    tp, fp, fn = pair_counts(predicted, ds.pairs)
    return {
        "pairwise_precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "pairwise_recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "pairwise_f1": round(f1_of(tp, fp, fn), 4),
        "same_story_pairs": tp + fn,
        "joined_pairs": tp + fp,
    }


def model_to_dict(model: PairModel, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": MODEL_VERSION,
        "features": list(FEATURES),
        "models": {
            name: {"coef": [round(c, 6) for c in m.coef], "intercept": round(m.intercept, 6), "threshold": m.threshold,
                   "vetoes": list(m.vetoes)}
            for name, m in (("long", model.long), ("short", model.short))
        },
        "trained": {
            "command": "python -m pipeline.stories.train",
            "data": "ECB+ dev (full, lead, title) pairs and 2025 feed entries (topics-dev), NEWSMON_CORPORA",
            "C": C,
            "rows": report["rows"],
            "out_of_fold": report["out_of_fold"],
            "in_sample": report["in_sample"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    from pipeline.evaluate import default_corpora

    parser = argparse.ArgumentParser(prog="python -m pipeline.stories.train", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="cross-validate only; do not write the model")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args(argv)
    corpora = default_corpora()
    if corpora is None:
        print("corpora folder not found: set NEWSMON_CORPORA", file=sys.stderr)
        return 2
    report = cross_validate(corpora, log=lambda m: print(m, file=sys.stderr, flush=True))
    shown = {k: v for k, v in report.items() if k != "model"}
    print(json.dumps(shown, indent=2))
    if not args.check:
        args.out.write_text(json.dumps(model_to_dict(report["model"], report), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
