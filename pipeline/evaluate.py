"""Quality measurement: story folding and topic matching scored against labelled data.

Four entry points, each a plain function over paths and dicts:

* `evaluate_dedup(corpora, fast=...)` -- story folding (pipeline/stories/). The headline figures are
  out of fold (``dedup.ecb_oof``, ``dedup.headlines_oof``: the pair model fitted and its
  thresholds chosen without the ECB+ topic / the day being scored, see pipeline/stories/train.py);
  the in-sample figures of the shipped model stand beside them. The fast part
  needs only the repository: the five seeds (is the partition exact?) and reprints made here from
  them. The full part adds the ECB+ dev set from the corpora folder (pairwise P/R/F1, the
  false-merge rate on same-topic-different-story pairs, B-cubed), the same documents streamed into
  a `StoryIndex`, mixed with the extraction benchmark's 181 articles, and reprints of ECB+.
* `evaluate_topics(corpora, topics_dir)` -- topic matching (pipeline/stages/topics.py): precision
  and recall per topic on the seed labels (seeds/labels.json) and on the labelled real articles
  (tests/fixtures/topic_labels.jsonl, texts read from the extraction corpus), plus the topics' own
  must_match / must_not_match examples.
* `check_floors(results, floors_path)` -- the metrics below their pinned floor (quality/floors.json).
* `format_report(results)` -- the results as a readable table.

Results are nested dicts of plain values (JSON-serialisable); a metric is named by its dotted path,
e.g. ``dedup.ecb.bcubed.f1`` or ``topics.seeds.sanctions.recall``. `corpora` is None when the
corpora folder is not available: the parts that need it are then left out of the results.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import bundled
from pipeline.models import DedupDoc
from pipeline.stages.dedup import DedupSettings, StoryIndex, fold_stories
from pipeline.stages.topics import Topic, check_examples, load_topics, match_article, should_alert

__all__ = [
    "default_corpora",
    "evaluate_dedup",
    "evaluate_topics",
    "check_floors",
    "format_report",
    "FLOORS",
    "TOPIC_LABELS",
]

REPO = Path(__file__).resolve().parents[1]
SEEDS = bundled("seeds")  # the checkout's, or the wheel's copy (setup.py)
FLOORS = bundled("quality", "floors.json")
TOPIC_LABELS = REPO / "tests" / "fixtures" / "topic_labels.jsonl"

# Reprint variants: site chrome around the article, an update paragraph in its middle.
CHROME_TOP = ["Connect with us", "Subscribe to our newsletter for the latest headlines every morning."]
CHROME_BOTTOM = [
    "Share this article on Facebook, Twitter and WhatsApp with your friends.",
    "Continue Reading",
    "Leave a Reply",
    "Your email address will not be published. Required fields are marked *",
    "Copyright 2025 Example Media Group. All rights reserved.",
]
UPDATE = (
    "Update: this story has been revised after publication to add further details and comment "
    "from officials, who did not respond to earlier requests before the deadline on Friday evening."
)
VARIANTS = ("verbatim", "trim60", "chrome", "updated", "headline")
# Trimming or replacing a paragraph of a one-paragraph text leaves nothing of the original, so only
# articles of at least this many paragraphs get reprints.
MIN_PARAGRAPHS = 5
TOPIC_LEVELS = ("about", "mentions", "no")


def default_corpora() -> Path | None:
    """$NEWSMON_CORPORA, by default ../shared/corpora beside the repository; None when missing.

    Under CI=true a missing folder is an error, never a silent skip.
    """
    path = Path(os.environ.get("NEWSMON_CORPORA", REPO.parent / "shared" / "corpora"))
    if path.is_dir():
        return path
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(f"corpora folder {path} is missing (set NEWSMON_CORPORA); CI requires it")
    return None


# ---------------------------------------------------------------------------------------------
# Scores.


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _prf(precision: float, recall: float) -> dict[str, float]:
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def pairwise(clusters: dict[str, str], pairs: Iterable[tuple[str, str, bool]]) -> dict[str, float]:
    """Precision, recall and F1 of 'same predicted story' against labelled (a, b, same) pairs."""
    tp = fp = fn = 0
    for a, b, same in pairs:
        predicted = clusters[a] == clusters[b]
        tp += predicted and same
        fp += predicted and not same
        fn += same and not predicted
    return _prf(tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)


def bcubed(predicted: dict[str, str], gold: dict[str, str]) -> dict[str, float]:
    """B-cubed precision, recall and F1 of a clustering, over the items of `gold`."""
    by_pred: dict[str, set[str]] = defaultdict(set)
    by_gold: dict[str, set[str]] = defaultdict(set)
    for item in gold:
        by_pred[predicted[item]].add(item)
        by_gold[gold[item]].add(item)
    precision = recall = 0.0
    for item in gold:
        mine, truth = by_pred[predicted[item]], by_gold[gold[item]]
        overlap = len(mine & truth)
        precision += overlap / len(mine)
        recall += overlap / len(truth)
    return _prf(precision / len(gold), recall / len(gold))


def merge_rate(predicted: dict[str, str], pairs: Sequence[tuple[str, str]]) -> float:
    """Share of the pairs that landed in one predicted story."""
    return sum(predicted[a] == predicted[b] for a, b in pairs) / len(pairs) if pairs else 0.0


def _partition(labels: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for item, label in labels.items():
        groups[label].add(item)
    return {frozenset(g) for g in groups.values()}


# ---------------------------------------------------------------------------------------------
# Dedup data.


def seed_docs() -> tuple[list[DedupDoc], dict[str, str]]:
    """The seed articles and their gold story per file name."""
    labels = json.loads((SEEDS / "labels.json").read_text(encoding="utf-8"))
    gold = {name: story for story, names in labels["stories"].items() for name in names}
    docs = [DedupDoc(doc_id=p.name, text=p.read_text(encoding="utf-8")) for p in sorted(SEEDS.glob("*.txt"))]
    return docs, gold


def ecb_docs(corpora: Path) -> tuple[list[DedupDoc], dict[str, str], list[tuple[str, str, str]]]:
    """ECB+ dev: documents, gold story per doc id, and the labelled (a, b, label) pairs."""
    folder = corpora / "stories"
    docs, gold = [], {}
    with open(folder / "ecbplus-dev.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(
                DedupDoc(doc_id=row["doc_id"], text=row["text"], title=row.get("title") or "",
                         url=row.get("url") or "")
            )
            gold[row["doc_id"]] = row["story_id"]
    with open(folder / "ecbplus-dev-pairs.csv", encoding="utf-8") as fh:
        pairs = [(r["doc_a"], r["doc_b"], r["label"]) for r in csv.DictReader(fh)]
    return docs, gold, pairs


def extraction_docs(corpora: Path) -> list[DedupDoc]:
    """The extraction benchmark's expected texts: other stories from another year."""
    folder = corpora / "extraction" / "scrapinghub" / "expected"
    return [DedupDoc(doc_id="x:" + p.stem, text=p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.txt"))]


def reprints(doc: DedupDoc) -> list[tuple[str, DedupDoc]]:
    """The five reprint variants of one article, each under its own URL."""
    paragraphs = [p for p in doc.text.splitlines() if p.strip()]
    keep = max(1, round(len(paragraphs) * 0.6))
    middle = len(paragraphs) // 2
    texts = {
        "verbatim": doc.text,
        "trim60": "\n".join(paragraphs[:keep]),
        "chrome": "\n".join(CHROME_TOP + paragraphs + CHROME_BOTTOM),
        "updated": "\n".join(paragraphs[:middle] + [UPDATE] + paragraphs[middle + 1 :]),
        "headline": "\n".join(["Exclusive: what we know so far, in full"] + paragraphs[1:]),
    }
    return [
        (kind, DedupDoc(doc_id=f"{doc.doc_id}~{kind}", text=text, url=f"https://reprints.example/{kind}/{doc.doc_id}"))
        for kind, text in texts.items()
    ]


# ---------------------------------------------------------------------------------------------
# Dedup sections.


def dedup_seeds(settings: DedupSettings) -> dict[str, Any]:
    """Fold the seeds; `exact` says whether the partition equals the labelled stories."""
    docs, gold = seed_docs()
    result = {a.doc_id: a for a in fold_stories(docs, settings)}
    exact = _partition({d: a.story_id for d, a in result.items()}) == _partition(gold)
    return {
        "exact": exact,
        "stories": len({a.story_id for a in result.values()}),
        "docs": {
            d: {"story_id": a.story_id, "link": a.link, "score": round(a.score, 3), "matched": a.matched_doc_id or ""}
            for d, a in result.items()
        },
    }


def dedup_ecb(settings: DedupSettings, corpora: Path) -> dict[str, Any]:
    """ECB+ dev folded in one batch: pairwise, false merges, B-cubed."""
    docs, gold, pairs = ecb_docs(corpora)
    started = time.perf_counter()
    predicted = {a.doc_id: a.story_id for a in fold_stories(docs, settings)}
    seconds = time.perf_counter() - started
    return {
        "docs": len(docs),
        "stories": len(set(gold.values())),
        "predicted_stories": len(set(predicted.values())),
        "seconds": round(seconds, 2),
        "pairwise": pairwise(predicted, ((a, b, label == "same_story") for a, b, label in pairs)),
        "false_merge_rate": merge_rate(predicted, _pairs(pairs, "same_topic_diff_story")),
        "cross_topic_merge_rate": merge_rate(predicted, _pairs(pairs, "diff_topic")),
        "bcubed": bcubed(predicted, gold),
    }


def dedup_ecb_streamed(settings: DedupSettings, corpora: Path) -> dict[str, Any]:
    """ECB+ added one by one to a `StoryIndex` that has not observed the batch (IDF grows with it)."""
    docs, gold, pairs = ecb_docs(corpora)
    index = StoryIndex(settings)
    predicted = {d.doc_id: index.add(d).story_id for d in sorted(docs, key=lambda d: d.doc_id)}
    return {
        "false_merge_rate": merge_rate(predicted, _pairs(pairs, "same_topic_diff_story")),
        "bcubed": bcubed(predicted, gold),
    }


def dedup_ecb_mixed(settings: DedupSettings, corpora: Path) -> dict[str, Any]:
    """ECB+ folded together with the extraction articles; any ECB+ doc sharing a story with one is false."""
    docs, gold, pairs = ecb_docs(corpora)
    others = extraction_docs(corpora)
    result = {a.doc_id: a.story_id for a in fold_stories(docs + others, settings)}
    predicted = {d: result[d] for d in gold}
    foreign = {result[d.doc_id] for d in others}
    return {
        "others": len(others),
        "false_merge_rate": merge_rate(predicted, _pairs(pairs, "same_topic_diff_story")),
        "merged_with_other": sum(story in foreign for story in predicted.values()),
        "bcubed": bcubed(predicted, gold),
    }


def dedup_headlines(settings: DedupSettings, corpora: Path) -> dict[str, Any]:
    """The 2025 feed entries (titles, several outlets per event), each day folded on its own:
    pairwise P/R/F1 over the pairs of entries of one day, with the shipped model (in sample)."""
    from pipeline.stories.train import fold_days, headline_dataset, headline_scores

    ds = headline_dataset(corpora)
    predicted = fold_days(ds, StoryIndex(settings).pair_model, settings, set(ds.group.values()))  # type: ignore[arg-type]
    return {"entries": len(ds.docs), **headline_scores(predicted, ds)}


def dedup_out_of_fold(settings: DedupSettings, corpora: Path, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """The training procedure cross-validated: leave one ECB+ topic out, leave one 2025 day out."""
    from pipeline.stories.train import cross_validate

    cv = cross_validate(corpora, settings, log=log, final=False)
    oof = cv["out_of_fold"]
    return {"ecb_oof": {**oof["ecb"], "thresholds": oof["thresholds"]["long_by_topic"]},
            "headlines_oof": {**oof["headlines"], "thresholds": oof["thresholds"]["short_by_day"]},
            "cv_seconds": cv["seconds"]}


def dedup_reprints(settings: DedupSettings, docs: list[DedupDoc]) -> dict[str, Any]:
    """Fold articles of MIN_PARAGRAPHS+ paragraphs with their reprints.

    `near_copy_recall`: share of the non-verbatim variants folded as a copy (exact_copy or near_copy)
    into their original's story; `false_merges`: variants linked into another story.
    """
    originals = [d for d in docs if len([p for p in d.text.splitlines() if p.strip()]) >= MIN_PARAGRAPHS]
    variants = [(doc, kind, v) for doc in originals for kind, v in reprints(doc)]
    result = {a.doc_id: a for a in fold_stories(originals + [v for _, _, v in variants], settings)}
    by_kind = {k: {"joined": 0, "as_copy": 0} for k in VARIANTS}
    wrong = 0
    for doc, kind, variant in variants:
        got, want = result[variant.doc_id], result[doc.doc_id]
        same = got.story_id == want.story_id
        by_kind[kind]["joined"] += same
        by_kind[kind]["as_copy"] += same and got.link in ("exact_copy", "near_copy")
        wrong += not same and got.link != "original"
    near = [k for k in VARIANTS if k != "verbatim"]
    n = len(originals)
    recall = sum(by_kind[k]["as_copy"] for k in near) / (n * len(near)) if n else 0.0
    return {
        "originals": n,
        "variants": len(variants),
        "by_kind": by_kind,
        "near_copy_recall": recall,
        "false_merges": wrong,
    }


def _pairs(pairs: list[tuple[str, str, str]], label: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b, lab in pairs if lab == label]


def evaluate_dedup(corpora: Path | None, *, fast: bool, log: Callable[[str], None] = lambda _: None) -> dict:
    """Story folding quality: seeds and their reprints; with fast=False also ECB+ (needs `corpora`).
    `log` hears what is being measured, as it starts (the full run takes over a minute)."""
    settings = DedupSettings()
    seed_list = seed_docs()[0]
    out: dict[str, Any] = {
        "mode": "fast" if fast else "full",
        "seeds": dedup_seeds(settings),
        "reprints_seeds": dedup_reprints(settings, seed_list),
    }
    if not fast and corpora is not None:
        started = time.perf_counter()
        if (corpora / "topics-dev" / "headlines-2025.jsonl").is_file():
            log("out of fold: the pair model fitted and its thresholds chosen without each ECB+ topic, each 2025 day")
            out.update(dedup_out_of_fold(settings, corpora, log))
            log("2025 feed entries, in sample")
            out["headlines"] = dedup_headlines(settings, corpora)
        log("ECB+ dev in sample: as a batch, streamed")
        out["ecb"] = dedup_ecb(settings, corpora)
        out["ecb_streamed"] = dedup_ecb_streamed(settings, corpora)
        if (corpora / "extraction" / "scrapinghub" / "expected").is_dir():
            log("ECB+ mixed with the extraction pages")
            out["ecb_mixed"] = dedup_ecb_mixed(settings, corpora)
        log("reprints of ECB+")
        out["reprints_ecb"] = dedup_reprints(settings, ecb_docs(corpora)[0])
        out["full_seconds"] = round(time.perf_counter() - started, 1)
    elif not fast:
        out["skipped"] = "ECB+: corpora folder not found (set NEWSMON_CORPORA)"
    return {"dedup": out}


# ---------------------------------------------------------------------------------------------
# Topics.


def read_article(path: Path) -> tuple[str, str]:
    """Title = first line, text = the rest (how the seeds and the expected texts are laid out)."""
    title, _, text = path.read_text(encoding="utf-8").partition("\n")
    return title, text


def seed_topic_labels() -> dict[str, dict[str, str]]:
    """{topic: {seed file: "about" | "mentions"}} from seeds/labels.json; absent seeds are "no"."""
    spec = json.loads((SEEDS / "labels.json").read_text(encoding="utf-8"))["topics"]
    return {
        topic: {**{s: "mentions" for s in v.get("mentions_only", [])}, **{s: "about" for s in v["about"]}}
        for topic, v in spec.items()
    }


def load_topic_labels(path: Path) -> list[dict[str, str]]:
    """The labelled real-article rows (ids and labels only, no text)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        for key, value in row.items():
            if key not in ("id", "title_hint", "note") and value not in TOPIC_LEVELS:
                raise ValueError(f"{path}: {row['id']}: label {key}={value!r} is not one of {TOPIC_LEVELS}")
    return rows


def _level(title: str, text: str, topic: Topic) -> tuple[str | None, bool]:
    """(match level or None, whether it raises an alert)."""
    found = match_article("doc", title, text, [topic])
    return (found[0].level, should_alert(found[0], topic)) if found else (None, False)


def score_topic(topic: Topic, items: Sequence[tuple[str, str, str, str]]) -> dict[str, Any]:
    """Precision/recall of alerts against labels for (item id, label, title, text) items.

    "about" must alert; "mentions" must not, unless the topic alerts on mentions (then either way
    is fine, so the item is left out of the counts); "no" must not alert. Precision or recall is
    None when undefined (nothing alerted, or nothing labelled "about").
    """
    tp = fp = fn = tn = mention_hits = mentions = noise = 0
    wrong: list[str] = []
    noisy: list[str] = []
    for item_id, label, title, text in items:
        level, alerted = _level(title, text, topic)
        if label == "mentions":
            mentions += 1
            mention_hits += level is not None
            if topic.alert_on_mentions:
                continue
        if label == "no" and level is not None:
            noise += 1
            noisy.append(item_id)
        want = label == "about"
        tp += want and alerted
        fn += want and not alerted
        fp += alerted and not want
        tn += not alerted and not want
        if want != alerted:
            wrong.append(f"{item_id} labelled {label}, got {level or 'no match'}")
    return {
        "about": tp + fn,
        "alerts": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "mentions_labelled": mentions,
        "mentions_detected": mention_hits,
        "no_but_mention": noise,
        "no_but_mention_ids": noisy,
        "wrong": wrong,
    }


def _without_exemplar(topic: Topic, exemplar_id: str) -> Topic:
    """The topic without that exemplar, so a seed cannot match itself."""
    return dataclasses.replace(topic, exemplars=tuple(e for e in topic.exemplars if e.id != exemplar_id))


def topics_on_seeds(topics: Sequence[Topic]) -> dict[str, Any]:
    """Each topic against every seed, the seed left out of the topic's exemplars."""
    labels = seed_topic_labels()
    seeds = [(p.name, *read_article(p)) for p in sorted(SEEDS.glob("*.txt"))]
    out = {}
    for topic in topics:
        mine = labels.get(topic.id, {})
        per_seed = [
            score_topic(_without_exemplar(topic, name), [(name, mine.get(name, "no"), title, text)])
            for name, title, text in seeds
        ]
        out[topic.id] = _sum_scores(per_seed)
    return out


def _sum_scores(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    counts = ("tp", "fp", "fn", "tn", "mentions_labelled", "mentions_detected", "no_but_mention")
    total: dict[str, Any] = {k: sum(p[k] for p in parts) for k in counts}
    tp, fp, fn = total["tp"], total["fp"], total["fn"]
    return {
        "about": tp + fn,
        "alerts": tp + fp,
        **total,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "no_but_mention_ids": [i for p in parts for i in p["no_but_mention_ids"]],
        "wrong": [w for p in parts for w in p["wrong"]],
    }


def topics_on_labelled(topics: Sequence[Topic], corpora: Path, labels_path: Path) -> dict[str, Any]:
    """Each topic against every extraction article; a page absent from the labels is "no" for all."""
    folder = corpora / "extraction"
    with open(folder / "manifest.jsonl", encoding="utf-8") as fh:
        manifest = {row["id"]: folder / row["expected_text_path"] for row in map(json.loads, fh)}
    rows = {row["id"]: row for row in load_topic_labels(labels_path)}
    unknown = sorted(set(rows) - set(manifest))
    if unknown:
        raise ValueError(f"{labels_path}: ids not in the extraction manifest: {', '.join(unknown)}")
    articles = {page: read_article(path) for page, path in sorted(manifest.items())}
    out: dict[str, Any] = {"pages": len(articles), "listed": len(rows)}
    for topic in topics:
        items = [(page, rows.get(page, {}).get(topic.id, "no"), *art) for page, art in articles.items()]
        out[topic.id] = score_topic(topic, items)
    return out


def topics_on_dev(topics: Sequence[Topic], folder: Path) -> dict[str, Any]:
    """Alert-level figures on the labelled development set (articles and 2025 feed entries), per
    topic: out of fold, with folds by source and by time (each text scored by a model fitted without
    its fold), and in sample (the shipped topic as it is, whose model may have seen these texts).

    Training in each fold uses the other folds, the topic's own examples and the labelled seeds,
    exactly what `newsmon topics train` uses.
    """
    from pipeline.topics.labelled import examples_of, for_topic, load_labelled
    from pipeline.topics.train import cross_validate, score_alerts

    dev = load_labelled(folder)
    seeds = load_labelled(SEEDS)
    out: dict[str, Any] = {}
    for topic in topics:
        items = for_topic(dev, topic.id) + examples_of(topic) + for_topic(seeds, topic.id, "example")
        res: dict[str, Any] = {}
        for scheme in ("source", "time"):
            oof = cross_validate(topic, items, scheme)
            for kind in ("article", "headline"):
                res[f"oof_{scheme}_{kind}"] = score_alerts(items, oof.alert, kind)
        in_sample = np.array([
            any(should_alert(m, topic) for m in match_article(it.id, it.title, it.text, [topic]))
            for it in items
        ])
        for kind in ("article", "headline"):
            res[f"in_sample_{kind}"] = score_alerts(items, in_sample, kind)
        # The headline figure per kind: the worse of the two fold schemes.
        for kind in ("article", "headline"):
            for metric in ("precision", "strict_precision", "recall"):
                vals = [res[f"oof_{s}_{kind}"][metric] for s in ("source", "time")]
                vals = [v for v in vals if v is not None]
                res[f"{kind}_{metric}"] = min(vals) if vals else None
        res["model"] = topic.model is not None
        out[topic.id] = res
    return out


def evaluate_topics(corpora: Path | None, topics_dir: Path, *, labels: Path = TOPIC_LABELS) -> dict:
    """Topic matching quality: per topic on the seeds, on the labelled articles (needs `corpora`),
    and the topics' own examples."""
    topics = load_topics(topics_dir)
    failures = [f for topic in topics for f in check_examples(topic)]
    out: dict[str, Any] = {
        "seeds": topics_on_seeds(topics),
        "examples": {"failures": len(failures), "messages": failures},
    }
    if corpora is not None:
        out["labelled"] = topics_on_labelled(topics, corpora, labels)
        if (corpora / "topics-dev").is_dir():
            out["dev"] = topics_on_dev(topics, corpora / "topics-dev")
    else:
        out["skipped"] = "labelled articles: corpora folder not found (set NEWSMON_CORPORA)"
    return {"topics": out}


# ---------------------------------------------------------------------------------------------
# Floors and report.


def _lookup(results: dict, path: str) -> tuple[bool, Any]:
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_floors(results: dict, floors_path: Path) -> list[str]:
    """The metrics on the wrong side of their pinned bound in `floors_path`; empty means pass.

    The file holds groups ("fast", "full") of ``{"dotted.metric": {"min": x}}`` or ``{"max": x}``.
    A metric whose part was not run (the first two components of its path absent from `results`,
    e.g. ``dedup.ecb`` after a fast run) is not checked; a missing metric inside a part that ran,
    or an undefined (None) value, fails.
    """
    spec = json.loads(Path(floors_path).read_text(encoding="utf-8"))
    failures = []
    for group, floors in spec.items():
        if group.startswith("_"):
            continue
        for metric, bound in floors.items():
            part = ".".join(metric.split(".")[:2])
            if not _lookup(results, part)[0]:
                continue
            found, value = _lookup(results, metric)
            if not found or value is None:
                failures.append(f"{group}: {metric} is {'undefined' if found else 'missing'}")
                continue
            value = float(value)
            if "min" in bound and value < bound["min"]:
                failures.append(f"{group}: {metric} = {value:.4f} is below its floor {bound['min']}")
            if "max" in bound and value > bound["max"]:
                failures.append(f"{group}: {metric} = {value:.4f} is above its ceiling {bound['max']}")
    return failures


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _dedup_lines(d: dict[str, Any]) -> list[str]:
    lines = [f"dedup ({d['mode']})", f"  seeds: partition exact {_fmt(d['seeds']['exact'])}, "
             f"{d['seeds']['stories']} stories"]
    for doc_id, a in d["seeds"]["docs"].items():
        lines.append(f"    {doc_id}  {a['story_id']}  {a['link']:<10} {a['score']:.3f}  {a['matched']}")
    if "ecb_oof" in d:
        o, h = d["ecb_oof"], d["headlines_oof"]
        lines += [
            "  OUT OF FOLD (the headline; pair model + thresholds chosen without the scored fold, "
            f"{d['cv_seconds']:.0f}s):",
            f"    ECB+ dev, leave one topic out: B-cubed F1 {_fmt(o['bcubed_f1'])}, pairwise F1 "
            f"{_fmt(o['pairwise_f1'])}, same-topic false merges {o['false_merge_rate']:.2%}, "
            f"{o['predicted_stories']} stories for {o['stories']}",
            f"    2025 entries, leave one day out: pairwise P {_fmt(h['pairwise_precision'])} "
            f"R {_fmt(h['pairwise_recall'])} F1 {_fmt(h['pairwise_f1'])} ({h['same_story_pairs']} same-story pairs)",
            "  IN SAMPLE (the shipped model on the data it was fitted on):",
        ]
    if "headlines" in d:
        h = d["headlines"]
        lines.append(f"    2025 entries ({h['entries']}): pairwise P {_fmt(h['pairwise_precision'])} "
                     f"R {_fmt(h['pairwise_recall'])} F1 {_fmt(h['pairwise_f1'])}")
    if "ecb" in d:
        e = d["ecb"]
        p, b = e["pairwise"], e["bcubed"]
        lines += [
            f"  ECB+ dev: {e['docs']} docs, {e['stories']} stories -> {e['predicted_stories']} predicted "
            f"({e['seconds']:.1f}s)",
            f"    pairwise      P {_fmt(p['precision'])}  R {_fmt(p['recall'])}  F1 {_fmt(p['f1'])}",
            f"    B-cubed       P {_fmt(b['precision'])}  R {_fmt(b['recall'])}  F1 {_fmt(b['f1'])}",
            f"    false merges  same_topic_diff_story {e['false_merge_rate']:.2%}, "
            f"diff_topic {e['cross_topic_merge_rate']:.2%}",
        ]
    for key, name in (("ecb_streamed", "ECB+ streamed"), ("ecb_mixed", "ECB+ mixed")):
        if key in d:
            s, b = d[key], d[key]["bcubed"]
            extra = f", merged with another article {s['merged_with_other']}" if "merged_with_other" in s else ""
            lines.append(f"  {name}: B-cubed P {_fmt(b['precision'])} R {_fmt(b['recall'])} F1 {_fmt(b['f1'])}, "
                         f"false merges {s['false_merge_rate']:.2%}{extra}")
    for key, name in (("reprints_seeds", "seeds"), ("reprints_ecb", "ECB+")):
        if key in d:
            r = d[key]
            kinds = ", ".join(f"{k} {v['as_copy']}/{r['originals']}" for k, v in r["by_kind"].items())
            lines.append(f"  reprints of {name} ({r['originals']} originals): near_copy recall "
                         f"{_fmt(r['near_copy_recall'])}, false merges {r['false_merges']}; as copy: {kinds}")
    if "skipped" in d:
        lines.append(f"  {d['skipped']}")
    return lines


def _topic_lines(t: dict[str, Any]) -> list[str]:
    lines = ["topics", f"  {'set':<9} {'topic':<12} {'P':>6} {'R':>6}  about alerts  tp fp fn  "
                       f"mentions(seen) no-but-mention"]
    for part in ("seeds", "labelled"):
        for topic, s in t.get(part, {}).items():
            if not isinstance(s, dict):
                continue
            lines.append(
                f"  {part:<9} {topic:<12} {_fmt(s['precision']):>6} {_fmt(s['recall']):>6}  {s['about']:>5} "
                f"{s['alerts']:>6} {s['tp']:>3} {s['fp']:>2} {s['fn']:>2}  {s['mentions_labelled']:>8}"
                f"({s['mentions_detected']}) {s['no_but_mention']:>14}"
            )
            lines += [f"      wrong: {w}" for w in s["wrong"]]
            lines += [f"      mention on a 'no' item: {i}" for i in s["no_but_mention_ids"]]
    if "dev" in t:
        lines.append("  topics-dev (alert level; P leaves alerts on 'mentions' out, strict P counts them wrong)")
        lines.append(f"    {'topic':<12} {'figure':<18} {'kind':<9} {'P':>6} {'strictP':>7} {'R':>6}  about alerts  tp fp fp(m) fn")
        for topic, r in t["dev"].items():
            for fig in ("oof_source", "oof_time", "in_sample"):
                for kind in ("article", "headline"):
                    s = r[f"{fig}_{kind}"]
                    lines.append(
                        f"    {topic:<12} {fig:<18} {kind:<9} {_fmt(s['precision']):>6} {_fmt(s['strict_precision']):>7} "
                        f"{_fmt(s['recall']):>6}  {s['about']:>5} {s['alerts']:>6} {s['tp']:>3} {s['fp']:>2} "
                        f"{s['fp_mentions']:>5} {s['fn']:>2}"
                    )
            if not r["model"]:
                lines.append(f"    {topic}: no trained model; in-sample figures are the rules alone")
    if "labelled" in t:
        lab = t["labelled"]
        lines.append(f"  labelled set: {lab['pages']} extraction pages, {lab['listed']} listed in the labels "
                     "(the rest count as 'no')")
    lines.append(f"  examples: {t['examples']['failures']} failures")
    lines += [f"    {m}" for m in t["examples"]["messages"]]
    if "skipped" in t:
        lines.append(f"  {t['skipped']}")
    return lines


def format_report(results: dict) -> str:
    """The results of `evaluate_dedup` and/or `evaluate_topics` as a readable table."""
    lines: list[str] = []
    if "dedup" in results:
        lines += _dedup_lines(results["dedup"])
    if "topics" in results:
        lines += _topic_lines(results["topics"])
    return "\n".join(lines)
