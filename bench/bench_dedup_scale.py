"""Scale of story folding: per-article cost and memory as the stored history grows.

Builds a `StoryIndex` holding N stored articles (loaded as history, `add(doc, story_id=...)`, as
`fold_batch` does) and folds the same probe batch of new articles into it (`observe`, then `add`
for each, in publication order), for every N of `--sizes`, in one run. The articles are synthetic
news: ~400-600 words of common English around story-specific names, places and numbers, mostly
distinct stories, with some reprints and rewrites; history is published at `--per-day` articles a
day, so a larger history spans more days (as a growing store does), and the probes come after it.

Prints, per size: history load time, index memory per stored article (RSS growth while loading),
per-article fold time of the probe batch, and how the probes were linked; the saved index
(pipeline/stories/persist.py): the first, whole save (size, wall seconds), then the incremental
save after one more batch of `--save-batch` articles is folded (bytes and wall seconds: what the
daemon pays after each committed batch), and the start-up time from it (read and verify the
bases and the log, rebuild the object; wall seconds); then the ratio of the
per-article time at the largest size to that at the smallest, and what a batch would cost per
article if the index were rebuilt from history for it (the daemon keeps it instead), and the
start-up time projected to 1M articles from a line through the measured sizes.

    .venv/bin/python bench/bench_dedup_scale.py --sizes 1000,100000
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wordfreq import top_n_list  # noqa: E402

from pipeline.models import DedupDoc  # noqa: E402
from pipeline.stages.dedup import DedupSettings, StoryIndex  # noqa: E402
from pipeline.stories.persist import load_index, save_index_report  # noqa: E402

_SYLLABLES = [
    "ka", "lo", "vin", "dra", "mor", "sel", "tu", "rez", "bal", "on", "ie", "gar", "ni", "ste", "quo",
    "ber", "ash", "ul", "men", "zo", "pra", "lit", "has", "ven", "dor", "eki", "mar", "tal", "sun", "ro",
]
_CHROME = [
    "Sign up for our morning briefing and never miss a story again.",
    "Share this article with your friends on Facebook, X and WhatsApp.",
    "Your email address will not be published. Required fields are marked",
]


class NewsGenerator:
    """Deterministic synthetic news stories, copies and rewrites."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        words = top_n_list("en", 30_000)
        self.common = [w for w in words[:400] if w.isalpha()]
        self.content = [w for w in words[400:30_000] if w.isalpha() and len(w) > 2]

    def _name(self) -> str:
        rng = self.rng
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()

    def story(self) -> dict:
        """The facts of one story: people, places, organisations, numbers and its own vocabulary."""
        rng = self.rng
        return {
            "people": [f"{self._name()} {self._name()}" for _ in range(rng.randint(2, 4))],
            "places": [self._name() for _ in range(rng.randint(1, 3))],
            "orgs": [f"{self._name()} {rng.choice(['Group', 'Ministry', 'Council', 'Bank', 'Party'])}" for _ in range(2)],
            "numbers": [str(rng.randint(2, 99_999)) for _ in range(rng.randint(2, 5))],
            "topic": rng.sample(self.content, 25),
        }

    def _sentence(self, facts: dict) -> str:
        rng = self.rng
        words: list[str] = []
        for _ in range(rng.randint(12, 24)):
            r = rng.random()
            if r < 0.42:
                words.append(rng.choice(self.common))
            elif r < 0.62:
                words.append(rng.choice(facts["topic"]))
            elif r < 0.9:
                words.append(rng.choice(self.content))
            elif r < 0.94:
                words.append(rng.choice(facts["people"]))
            elif r < 0.96:
                words.append(rng.choice(facts["places"]))
            elif r < 0.98:
                words.append(rng.choice(facts["orgs"]))
            else:
                words.append(rng.choice(facts["numbers"]))
        return words[0].capitalize() + " " + " ".join(words[1:]) + "."

    def article(self, facts: dict) -> tuple[str, str]:
        """(title, text) of ~400-600 words."""
        rng = self.rng
        title = f"{facts['people'][0]} {rng.choice(self.content)} in {facts['places'][0]}"
        paragraphs: list[str] = []
        words = 0
        target = rng.randint(400, 600)
        while words < target:
            para = " ".join(self._sentence(facts) for _ in range(rng.randint(2, 3)))
            paragraphs.append(para)
            words += len(para.split())
        return title, "\n\n".join(paragraphs)

    def copy(self, title: str, text: str) -> tuple[str, str]:
        """A reprint: verbatim with chrome, or trimmed, or with a new last paragraph."""
        rng = self.rng
        paras = text.split("\n\n")
        kind = rng.randrange(3)
        if kind == 0:
            paras = [_CHROME[0], *paras, _CHROME[1], _CHROME[2]]
        elif kind == 1:
            paras = paras[: max(2, int(len(paras) * 0.7))]
        else:
            paras = [*paras[:-1], "Update: " + " ".join(rng.choices(self.content, k=20)) + "."]
        return title, "\n\n".join(paras)

    def rewrite(self, facts: dict, text: str) -> tuple[str, str]:
        """Another outlet's version: the same facts, its own sentences, a few phrases shared."""
        title, own = self.article(facts)
        shared = [p for p in text.split("\n\n")][:2]
        paras = own.split("\n\n")
        paras[1:1] = [" ".join(p.split(". ")[0] for p in shared) + "."]
        return title, "\n\n".join(paras)


def build_corpus(total: int, probes: int, per_day: float, seed: int) -> tuple[list[tuple[DedupDoc, str]], list[tuple[DedupDoc, str]]]:
    """`total` history (doc, story_id) in publication order, and `probes` (doc, expected link)."""
    gen = NewsGenerator(seed)
    rng = gen.rng
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(days=1.0 / per_day)
    history: list[tuple[DedupDoc, str]] = []
    facts_of: list[dict] = []
    for i in range(total):
        when = start + step * i
        r = rng.random()
        recent = len(history) - 1 - rng.randrange(min(len(history), 200)) if history else -1
        if r < 0.1 and recent >= 0:
            source, story = history[recent]
            title, text = gen.copy(source.title, source.text)
            facts = facts_of[recent]
        elif r < 0.2 and recent >= 0:
            source, story = history[recent]
            facts = facts_of[recent]
            title, text = gen.rewrite(facts, source.text)
        else:
            facts = gen.story()
            title, text = gen.article(facts)
            story = f"s_hist{i:06d}"
        doc = DedupDoc(f"h{i:06d}", text, title, f"https://site{i % 23}.example/news/{i}", when, f"site{i % 23}")
        history.append((doc, story))
        facts_of.append(facts)
    # Probes: after the history, sources among its newest 1,000 articles (present at every size).
    end = start + step * total
    out: list[tuple[DedupDoc, str]] = []
    for i in range(probes):
        when = end + timedelta(minutes=2 * i)
        kind = ("original", "copy", "rewrite")[i % 3]
        j = total - 1 - rng.randrange(min(total, 1_000))
        source, _ = history[j]
        if kind == "original":
            title, text = gen.article(gen.story())
        elif kind == "copy":
            title, text = gen.copy(source.title, source.text)
        else:
            title, text = gen.rewrite(facts_of[j], source.text)
        out.append((DedupDoc(f"p{i:04d}", text, title, f"https://probe{i % 11}.example/a/{i}", when, "probe"), kind))
    return history, out


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_size(
    n: int, history: list[tuple[DedupDoc, str]], probes: list[tuple[DedupDoc, str]], settings: DedupSettings,
    extra: list[tuple[DedupDoc, str]],
) -> dict:
    stored = history[len(history) - n :]
    gc.collect()
    rss0 = rss_bytes()
    index = StoryIndex(settings)
    t0 = time.process_time()
    for doc, story_id in stored:
        index.add(doc, story_id=story_id)
    load = time.process_time() - t0
    gc.collect()
    rss1 = rss_bytes()
    parts = index.nbytes()
    batch = [doc for doc, _ in probes]
    t0 = time.process_time()
    index.observe(batch)
    links = Counter()
    for (doc, kind) in probes:
        links[(kind, index.add(doc).link)] += 1
    fold = time.process_time() - t0
    with tempfile.TemporaryDirectory(prefix="bench-story-index-") as tmp:
        path = Path(tmp) / "story_index"
        w0 = time.perf_counter()
        first = save_index_report(index, path, "bench-0", settings)
        save_wall = time.perf_counter() - w0
        more = [doc for doc, _ in extra]
        index.observe(more)
        for doc in more:
            index.add(doc)
        w0 = time.perf_counter()
        second = save_index_report(index, path, "bench-1", settings)
        inc_wall = time.perf_counter() - w0
        assert first.whole and not second.whole, (first, second)
        del index
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        loaded = load_index(path, "bench-1", settings)
        start_wall, start_cpu = time.perf_counter() - w0, time.process_time() - c0
        assert loaded.value is not None, loaded.reason
        index = loaded.value
    result = {
        "n": n,
        "indexed": len(index),
        "load_s": load,
        "load_ms_per_doc": 1000 * load / n,
        "mem_kb_per_doc": (rss1 - rss0) / n / 1024,
        "arrays_kb_per_doc": sum(parts.values()) / n / 1024,
        "parts": {k: v / n for k, v in parts.items()},
        "fold_ms_per_doc": 1000 * fold / len(probes),
        "links": links,
        "save_s": save_wall,
        "inc_save_s": inc_wall,
        "inc_save_mb": second.bytes_written / 1024**2,
        "inc_parts": f"meta {second.meta_bytes / 1024**2:.1f} MB, log {second.log_bytes / 1024**2:.1f} MB, "
                     f"bases {(second.bytes_written - second.meta_bytes - second.log_bytes) / 1024**2:.1f} MB",
        "start_s": start_wall,
        "start_cpu_s": start_cpu,
        "file_kb_per_doc": first.bytes_written / n / 1024,
    }
    del index
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000", help="history sizes, comma-separated")
    ap.add_argument("--probes", type=int, default=300, help="articles folded at every size")
    ap.add_argument("--per-day", type=float, default=5_000.0, help="history articles published per day")
    ap.add_argument("--save-batch", type=int, default=100, help="articles folded between the whole and the incremental save")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    t0 = time.process_time()
    history, probes = build_corpus(max(sizes), args.probes + args.save_batch, args.per_day, args.seed)
    probes, extra = probes[: args.probes], probes[args.probes :]
    print("times are CPU seconds of this process (the machine is shared; wall time is noisier)")
    print(f"generated {len(history)} history articles and {len(probes)} probes in {time.process_time() - t0:.1f}s")
    base = DedupSettings()
    settings = replace(base, max_history=max(base.max_history, max(sizes)))
    results = []
    for n in sizes:
        r = run_size(n, history, probes, settings, extra)
        results.append(r)
        linked = ", ".join(f"{kind}->{link} {c}" for (kind, link), c in sorted(r["links"].items()))
        print(
            f"N={n:>7}: load {r['load_s']:7.1f}s ({r['load_ms_per_doc']:.2f} ms/article), "
            f"index memory {r['mem_kb_per_doc']:6.1f} kB/article (RSS growth; its arrays {r['arrays_kb_per_doc']:.2f} kB), "
            f"fold {r['fold_ms_per_doc']:6.2f} ms/article; saved whole {r['file_kb_per_doc']:.1f} kB/article in "
            f"{r['save_s']:.1f}s, then after {args.save_batch} more articles incrementally {r['inc_save_mb']:.1f} MB in "
            f"{r['inc_save_s']:.2f}s ({r['inc_parts']}); start-up from it {r['start_s']:.1f}s wall ({r['start_cpu_s']:.2f}s CPU)  [{linked}]",
            flush=True,
        )
        print("    bytes/article by part: " + ", ".join(f"{k} {v:.0f}" for k, v in r["parts"].items()), flush=True)
    small, large = results[0], results[-1]
    ratio = large["fold_ms_per_doc"] / small["fold_ms_per_doc"]
    print(f"per-article fold cost N={large['n']} / N={small['n']}: {ratio:.2f}x (target <= 1.5x)")
    # The daemon keeps its index between batches and pays the load once, at start. Rebuilding it
    # for every batch would add the whole load to each batch:
    batch = args.probes
    for r in (small, large):
        rebuilt = r["load_s"] * 1000 / batch + r["fold_ms_per_doc"]
        print(
            f"a batch of {batch} at N={r['n']}: {r['fold_ms_per_doc']:.2f} ms/article with the index kept, "
            f"{rebuilt:.1f} ms/article if it were rebuilt from history for the batch"
        )
    if len(results) >= 2:
        # Start-up grows with the index; a line through the two largest sizes projects it.
        a, b = results[-2], results[-1]
        slope = (b["start_s"] - a["start_s"]) / (b["n"] - a["n"])
        projected = b["start_s"] + slope * (1_000_000 - b["n"])
        cpu_slope = (b["start_cpu_s"] - a["start_cpu_s"]) / (b["n"] - a["n"])
        print(f"start-up CPU: {b['start_cpu_s']:.2f}s at N={b['n']}, "
              f"~{b['start_cpu_s'] + cpu_slope * (1_000_000 - b['n']):.0f}s at N=1,000,000 (projected linearly)")
        print(f"start-up from the saved index: {b['start_s']:.1f}s at N={b['n']} (measured), "
              f"~{projected:.0f}s at N=1,000,000 (projected linearly; target <= 60s), "
              f"needing ~{b['mem_kb_per_doc'] * 1_000_000 / 1024**2:.1f} GB by RSS growth, "
              f"~{b['arrays_kb_per_doc'] * 1_000_000 / 1024**2:.1f} GB of index arrays (target ~2 GB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
