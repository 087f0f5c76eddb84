"""Benchmark: the cost of topic matching per article, against the cost of extracting it.

On the 181 pages of the article-extraction corpus (../shared/corpora/extraction), in one run:

  extract     the pipeline's own extraction stage (extract_article: trafilatura, metadata, dates)
  match-3     match_article on the extracted title and text with the shipped topics (3, each with
              its learned model)
  match-20    the same with 20 topics: the shipped three copied under new ids until there are 20
              (rules, vocabulary, exemplars and model alike), so each costs what a real one does
  match-3 on headlines only (title, no text): what a feed entry costs

Prints milliseconds per article and matching as a share of extraction. The issue's budget is
matching at most 15% of extraction with 3 topics. The machine is shared and noisy: read the
ratios, measured in the same run, not the absolute figures. Usage:

  .venv/bin/python bench/bench_topics.py [--repeat N]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_extraction import load_pages  # noqa: E402

from pipeline.stages.extract import Rejected, extract_article  # noqa: E402
from pipeline.stages.topics import load_topics, match_article, parse_query  # noqa: E402

NOW = datetime.now(UTC)


def many_topics(n: int):
    base = load_topics(ROOT / "seeds" / "topics")
    out = []
    for i in range(n):
        t = base[i % len(base)]
        if i >= len(base):
            # Compiled afresh, so no clause is shared with the original (a shared clause would be
            # evaluated once per article and make the copies look free).
            rules = tuple(dataclasses.replace(r, node=parse_query(r.query)) for r in t.rules)
            vocab = t.vocabulary and dataclasses.replace(t.vocabulary, node=parse_query(t.vocabulary.query))
            t = dataclasses.replace(t, id=f"{t.id}-{i}", rules=rules, vocabulary=vocab)
        out.append(t)
    return out


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each part; the fastest counts (default 3)")
    args = ap.parse_args()
    pages = load_pages()
    articles = []

    def extract_all() -> None:
        articles.clear()
        for pg in pages:
            a = extract_article(pg, min_chars=200, now=NOW)
            if not isinstance(a, Rejected):
                articles.append(a)

    t_extract = timed(extract_all, args.repeat)
    n = len(pages)
    print(f"{n} pages, {len(articles)} extracted; best of {args.repeat} runs")
    print(f"  extract          {1000 * t_extract / n:8.2f} ms/article")
    three, twenty = many_topics(3), many_topics(20)
    for label, topics, headline_only in (
        ("match-3", three, False),
        ("match-20", twenty, False),
        ("match-3 headline", three, True),
    ):
        def run(topics=topics, headline_only=headline_only) -> None:
            for a in articles:
                match_article(a.article_id, a.title or "", "" if headline_only else a.text, topics)

        t = timed(run, args.repeat)
        per = 1000 * t / max(1, len(articles))
        print(f"  {label:<16} {per:8.2f} ms/article  = {t / t_extract * n / max(1, len(articles)):6.1%} of extraction")


if __name__ == "__main__":
    main()
