"""Measure story folding (pipeline/stages/dedup.py) on real text.

    .venv/bin/python bench/eval_dedup.py

Prints:

* seeds -- the five seed articles (seeds/*.txt, labels in seeds/labels.json): is the partition exact?
* ECB+ -- 196 news articles in 16 stories (../shared/corpora/stories): pairwise precision, recall
  and F1 over same-story pairs, the false-merge rate on same-topic-different-story pairs, and the
  B-cubed F1 of the story clusters;
* ECB+ streamed -- the same documents added one by one to a `StoryIndex` that has not observed
  the batch (the IDF grows with the stream, as on a first run without stored history);
* ECB+ mixed -- ECB+ folded together with the 181 articles of the extraction benchmark (other
  stories, other years): B-cubed of the ECB+ documents, and how many of them share a story with
  one of those articles (each such merge is false);
* reprints -- copies made here from the seeds and the ECB+ articles (verbatim under another URL,
  trimmed to 60%, with site chrome, with an updated paragraph, with a new headline): how many are
  folded as copies into their original's story, and how many land in another story.

The corpora folder is $NEWSMON_CORPORA, by default ../shared/corpora beside the repository.
When it is missing the corpus sections are skipped, unless CI=true, where that is an error.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.models import DedupDoc  # noqa: E402
from pipeline.stages.dedup import DedupSettings, StoryIndex, fold_stories  # noqa: E402

SEEDS = REPO / "seeds"
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
MIN_PARAGRAPHS = 5


def corpora_dir() -> Path | None:
    path = Path(os.environ.get("NEWSMON_CORPORA", REPO.parent / "shared" / "corpora"))
    if path.is_dir():
        return path
    if os.environ.get("CI", "").lower() == "true":
        raise SystemExit(f"corpora folder {path} is missing (set NEWSMON_CORPORA); CI requires it")
    return None


# ---------------------------------------------------------------------------------------------
# Scores.


def pairwise(clusters: dict[str, str], pairs: Iterable[tuple[str, str, bool]]) -> tuple[float, float, float]:
    """Precision, recall and F1 of 'same predicted story' against labelled (a, b, same) pairs."""
    tp = fp = fn = 0
    for a, b, same in pairs:
        predicted = clusters[a] == clusters[b]
        tp += predicted and same
        fp += predicted and not same
        fn += same and not predicted
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, _f1(precision, recall)


def bcubed(predicted: dict[str, str], gold: dict[str, str]) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 of a clustering."""
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
    precision, recall = precision / len(gold), recall / len(gold)
    return precision, recall, _f1(precision, recall)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


# ---------------------------------------------------------------------------------------------
# Data.


def seed_docs() -> tuple[list[DedupDoc], dict[str, str]]:
    labels = json.loads((SEEDS / "labels.json").read_text(encoding="utf-8"))
    gold = {name: story for story, names in labels["stories"].items() for name in names}
    docs = [DedupDoc(doc_id=p.name, text=p.read_text(encoding="utf-8")) for p in sorted(SEEDS.glob("*.txt"))]
    return docs, gold


def ecb_docs(corpora: Path) -> tuple[list[DedupDoc], dict[str, str], list[tuple[str, str, str]]]:
    folder = corpora / "stories"
    docs, gold = [], {}
    with open(folder / "ecbplus-dev.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(DedupDoc(doc_id=row["doc_id"], text=row["text"], title=row.get("title") or "",
                                 url=row.get("url") or ""))
            gold[row["doc_id"]] = row["story_id"]
    with open(folder / "ecbplus-dev-pairs.csv", encoding="utf-8") as fh:
        pairs = [(r["doc_a"], r["doc_b"], r["label"]) for r in csv.DictReader(fh)]
    return docs, gold, pairs


def extraction_docs(corpora: Path) -> list[DedupDoc]:
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
# Sections.


def show_seeds(settings: DedupSettings) -> bool:
    docs, gold = seed_docs()
    result = {a.doc_id: a for a in fold_stories(docs, settings)}
    exact = _partition({d: a.story_id for d, a in result.items()}) == _partition(gold)
    print(f"seeds: partition {'EXACT' if exact else 'WRONG'}")
    for doc_id, a in result.items():
        print(f"  {doc_id}  {a.story_id}  {a.link:<10} {a.score:.3f}  {a.matched_doc_id or ''}")
    return exact


def show_ecb(settings: DedupSettings, corpora: Path) -> dict[str, float]:
    docs, gold, pairs = ecb_docs(corpora)
    started = time.perf_counter()
    predicted = {a.doc_id: a.story_id for a in fold_stories(docs, settings)}
    elapsed = time.perf_counter() - started
    p, r, f = pairwise(predicted, ((a, b, label == "same_story") for a, b, label in pairs))
    hard = [(a, b) for a, b, label in pairs if label == "same_topic_diff_story"]
    other = [(a, b) for a, b, label in pairs if label == "diff_topic"]
    false_merge = sum(predicted[a] == predicted[b] for a, b in hard) / len(hard)
    cross_topic = sum(predicted[a] == predicted[b] for a, b in other) / len(other)
    bp, br, bf = bcubed(predicted, gold)
    print(f"ECB+ dev: {len(docs)} docs, {len(set(gold.values()))} stories -> "
          f"{len(set(predicted.values()))} predicted ({elapsed:.1f}s)")
    print(f"  pairwise   P={p:.3f} R={r:.3f} F1={f:.3f}")
    print(f"  false merges: same_topic_diff_story {false_merge:.3%}, diff_topic {cross_topic:.3%}")
    print(f"  B-cubed    P={bp:.3f} R={br:.3f} F1={bf:.3f}")
    return {"precision": p, "recall": r, "f1": f, "false_merge": false_merge, "bcubed_f1": bf}


def show_ecb_streamed(settings: DedupSettings, corpora: Path) -> float:
    docs, gold, pairs = ecb_docs(corpora)
    index = StoryIndex(settings)
    predicted = {d.doc_id: index.add(d).story_id for d in sorted(docs, key=lambda d: d.doc_id)}
    hard = [(a, b) for a, b, label in pairs if label == "same_topic_diff_story"]
    false_merge = sum(predicted[a] == predicted[b] for a, b in hard) / len(hard)
    bp, br, bf = bcubed(predicted, gold)
    print(f"ECB+ streamed (no observe): B-cubed P={bp:.3f} R={br:.3f} F1={bf:.3f}; "
          f"false merges same_topic_diff_story {false_merge:.3%}")
    return bf


def show_ecb_mixed(settings: DedupSettings, corpora: Path) -> float:
    docs, gold, pairs = ecb_docs(corpora)
    others = extraction_docs(corpora)
    result = {a.doc_id: a.story_id for a in fold_stories(docs + others, settings)}
    predicted = {d: result[d] for d in gold}
    hard = [(a, b) for a, b, label in pairs if label == "same_topic_diff_story"]
    false_merge = sum(predicted[a] == predicted[b] for a, b in hard) / len(hard)
    foreign = {result[d.doc_id] for d in others}
    crossed = sum(story in foreign for story in predicted.values())
    bp, br, bf = bcubed(predicted, gold)
    print(f"ECB+ mixed with {len(others)} other articles: B-cubed P={bp:.3f} R={br:.3f} F1={bf:.3f}; "
          f"false merges same_topic_diff_story {false_merge:.3%}; ECB+ docs merged with another article: {crossed}")
    return bf


def show_reprints(settings: DedupSettings, docs: list[DedupDoc], name: str) -> dict[str, float]:
    """Fold articles and their reprints together; each reprint should land in its original's story.

    Only articles of at least MIN_PARAGRAPHS paragraphs get reprints: trimming or replacing a
    paragraph of a one-paragraph text leaves nothing of the original.
    """
    originals = [d for d in docs if len([p for p in d.text.splitlines() if p.strip()]) >= MIN_PARAGRAPHS]
    variants = [(doc, kind, v) for doc in originals for kind, v in reprints(doc)]
    result = {a.doc_id: a for a in fold_stories(originals + [v for _, _, v in variants], settings)}
    joined: dict[str, int] = defaultdict(int)
    as_copy: dict[str, int] = defaultdict(int)
    wrong = 0
    for doc, kind, variant in variants:
        got, want = result[variant.doc_id], result[doc.doc_id]
        joined[kind] += got.story_id == want.story_id
        as_copy[kind] += got.story_id == want.story_id and got.link in ("exact_copy", "near_copy")
        wrong += got.story_id != want.story_id and got.link != "original"
    n = len(originals)
    near = [k for k in VARIANTS if k != "verbatim"]
    recall = sum(as_copy[k] for k in near) / (n * len(near))
    print(f"reprints of {name} ({n} originals of {MIN_PARAGRAPHS}+ paragraphs, {len(variants)} variants):")
    for kind in VARIANTS:
        print(f"  {kind:<9} joined {joined[kind]}/{n}  as copy {as_copy[kind]}/{n}")
    print(f"  near_copy recall {recall:.3f}; merged into another story: {wrong}")
    return {"near_copy_recall": recall, "false_merges": wrong}


def _partition(labels: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = defaultdict(set)
    for item, label in labels.items():
        groups[label].add(item)
    return {frozenset(g) for g in groups.values()}


def main() -> int:
    corpora = corpora_dir()   # first: under CI a missing corpora folder is an error, not a skip
    settings = DedupSettings()
    seeds_ok = show_seeds(settings)
    show_reprints(settings, seed_docs()[0], "seeds")
    if corpora is None:
        print("ECB+: skipped, corpora folder not found (set NEWSMON_CORPORA)")
        return 0 if seeds_ok else 1
    show_ecb(settings, corpora)
    show_ecb_streamed(settings, corpora)
    if (corpora / "extraction" / "scrapinghub" / "expected").is_dir():
        show_ecb_mixed(settings, corpora)
    show_reprints(settings, ecb_docs(corpora)[0], "ECB+")
    return 0 if seeds_ok else 1


if __name__ == "__main__":
    sys.exit(main())
