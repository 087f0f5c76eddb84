"""Benchmark: the batch pipeline (extraction through storage) against bare trafilatura.

On the 181 pages of the article-extraction corpus (../shared/corpora/extraction), in one run:

  bare        trafilatura.extract(html, include_comments=False) in a loop, pages already in
              memory: one process, and split over two processes (started before the clock)
  pipeline    the daemon's batch exactly as it runs: the 181 pages are served from a loopback
              HTTP server (a child process), and Beam (FnApiRunner, in process) runs
              DownloadPages -> ExtractArticles -> FoldStories -> MatchTopics -> JSON shards, then
              Store.load_batch commits them in one DuckLake transaction
  pipeline x2 the same with `extract_processes: 2` (extraction on two worker processes kept
              between batches): the in-process runner on both cores
  DirectRunner the same graph on Beam's DirectRunner in multi-processing mode, 2 workers (fresh
              worker processes every run: shown for comparison)

Each pipeline run is a fresh child process that first runs one batch of 40 other pages (texts of
the stories corpus), off the clock, as bare trafilatura is first run on ten pages: a daemon pays
imports, word tables, compiled topics and worker start-up once, not per batch.

Then the cost of each pure stage, timed in process without Beam, to show where time goes.
Prints pages/s and the ratio to bare trafilatura. The machine is shared and noisy, so read the
ratios, not the absolute figures. Usage:

  .venv/bin/python bench/bench_extraction.py [--repeat N] [--skip-multi]

--repeat N runs N rounds (bare, bare x2, each pipeline variant in turn) and reports each one's best.
The CPU columns add up the CPU seconds of the run's processes (the pipeline's, its extraction
workers', not the web server's): their ratio to bare's is what one core would reach if it were
free, which the machine's load moves far less than the wall-clock ratio.
--profile DIR also writes a cProfile of every timed pipeline run (variant0 = FnApiRunner, 1 process).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402

from pipeline.fetch.http import HttpSettings  # noqa: E402
from pipeline.flow import BatchOptions, run_batch  # noqa: E402
from pipeline.models import FeedItem, FeedState, Page  # noqa: E402
from pipeline.stages.dedup import DedupSettings  # noqa: E402
from pipeline.stages.extract import Rejected, extract_article  # noqa: E402
from pipeline.stages.stories import fold_batch  # noqa: E402
from pipeline.stages.topics import load_topics, match_article  # noqa: E402
from pipeline.store import Store  # noqa: E402


def corpora() -> Path:
    path = Path(os.environ.get("NEWSMON_CORPORA", ROOT.parent / "shared" / "corpora"))
    if not path.is_dir():
        sys.exit(f"corpora folder {path} not found; set NEWSMON_CORPORA")
    return path


def load_pages() -> list[Page]:
    base = corpora() / "extraction"
    now = datetime.now(UTC)
    pages = []
    for line in (base / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        html = (base / rec["html_path"]).read_bytes().decode(rec.get("html_encoding") or "utf-8", errors="replace")
        item = FeedItem(rec["id"].split("/")[-1][:20], "bench", rec["id"], rec["url"], "", "", None, now)
        pages.append(Page(item=item, final_url=rec["url"], status=200, html=html))
    return pages


def expected_texts() -> dict[str, str]:
    """item_id -> the human-annotated text of the page (the corpus's ground truth)."""
    base = corpora() / "extraction"
    out = {}
    for line in (base / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        out[rec["id"].split("/")[-1][:20]] = (base / rec["expected_text_path"]).read_text(encoding="utf-8")
    return out


def _token_f1(pred: str, gold: str) -> float:
    """Bag-of-words F1 of the extracted text against the expected text (lowercased \\w+ tokens)."""
    import re
    from collections import Counter

    p, g = Counter(re.findall(r"\w+", pred.lower())), Counter(re.findall(r"\w+", gold.lower()))
    tp = sum((p & g).values())
    if not tp:
        return 0.0
    precision, recall = tp / sum(p.values()), tp / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def extraction_f1(pages: list[Page]) -> list[tuple[str, float, float, float, float]]:
    """(settings, mean F1 on all pages, on the even-indexed half, on the odd half, seconds) for the
    pipeline's extraction (fast: no fallback extractors) and with trafilatura's fallbacks."""
    gold = expected_texts()
    now = datetime.now(UTC)
    rows = []
    for name, fast in (("pipeline (fast=True, no fallbacks)", True), ("with fallbacks (fast=False)", False)):
        t0 = time.perf_counter()
        scores = []
        for p in pages:
            a = extract_article(p, min_chars=0, now=now, fast=fast)
            scores.append(_token_f1("" if isinstance(a, Rejected) else a.text, gold[p.item.item_id]))
        secs = time.perf_counter() - t0
        even, odd = scores[0::2], scores[1::2]
        rows.append((name, sum(scores) / len(scores), sum(even) / len(even), sum(odd) / len(odd), secs))
    return rows


def _bare_chunk(htmls: list[str]) -> int:
    for h in htmls:
        trafilatura.extract(h, include_comments=False)
    return len(htmls)


def bench_bare_parallel(pages: list[Page], processes: int) -> float:
    """Bare trafilatura on `processes` worker processes (started before the clock), pages in memory."""
    from concurrent.futures import ProcessPoolExecutor

    htmls = [p.html for p in pages]
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_bare_chunk, [htmls[:2]] * processes))  # workers up, imports warm
        t0 = time.perf_counter()
        done = sum(pool.map(_bare_chunk, [htmls[i::processes * 4] for i in range(processes * 4)]))
        elapsed = time.perf_counter() - t0
    assert done == len(pages)
    return elapsed


def bench_bare(pages: list[Page]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of bare trafilatura on this process."""
    c0, t0 = time.process_time(), time.perf_counter()
    for pg in pages:
        trafilatura.extract(pg.html, url=pg.final_url, include_comments=False)
    return time.perf_counter() - t0, time.process_time() - c0


def _cpu_seconds() -> float:
    """CPU seconds of this process (all threads), its finished children, and the extraction pool's
    workers (children of the forkserver, read from /proc): what a batch costs, whatever the load."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + children.ru_utime + children.ru_stime
    from pipeline.stages import pool

    tick = os.sysconf("SC_CLK_TCK")
    for executor in list(pool._pools.values()):
        for pid in list((executor._processes or {}).keys()):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _serve(by_path: dict[str, bytes], port_out) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = by_path.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put(httpd.server_address[1])
    httpd.serve_forever()


class PageServer:
    """Serves the pages on 127.0.0.1 at /<item_id>.html from a child process: the web server is
    not the pipeline, and in the benchmark's own process its threads would take the pipeline's
    interpreter lock (a real site's server runs elsewhere)."""

    def __init__(self, pages: list[Page]) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        by_path = {f"/{p.item.item_id}.html": p.html.encode("utf-8") for p in pages}
        port_q = ctx.Queue()
        self.proc = ctx.Process(target=_serve, args=(by_path, port_q), daemon=True)
        self.proc.start()
        self.base = f"http://127.0.0.1:{port_q.get(timeout=60)}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


def warmup_pages(n: int = 40) -> list[Page]:
    """Pages made from the first `n` texts of the stories corpus (other articles than the timed
    ones): a batch of them runs first in each pipeline's process, as bare trafilatura is warmed on
    ten pages, so that per-process costs (imports, wordfreq's tables, compiled topics, worker
    processes) fall outside the clock, as they do for a daemon's every batch but its first."""
    from html import escape

    now = datetime.now(UTC)
    out = []
    with open(corpora() / "stories" / "ecbplus-dev.jsonl", encoding="utf-8") as fh:
        for i, line in zip(range(n), fh, strict=False):
            rec = json.loads(line)
            title = escape(rec["title"])
            body = "".join(f"<p>{escape(t)}</p>" for t in rec["text"].split("\n")[1:])
            html = f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>{body}</article></body></html>"
            item = FeedItem(f"warm{i:04d}", "bench", f"warm{i}", f"http://warm.example/{i}", "", "", None, now)
            out.append(Page(item=item, final_url=item.url, status=200, html=html))
    return out


def bench_pipeline(pages: list[Page], base: str, runner: str, beam_args: tuple[str, ...],
                   extract_processes: int = 1) -> tuple[float, dict]:
    tmp = Path(tempfile.mkdtemp(prefix="newsmon-bench-"))
    try:
        store = Store.open(tmp / "data")
        now = datetime.now(UTC)
        items = [replace(p.item, url=f"{base}/{p.item.item_id}.html") for p in pages]
        store.record_poll(FeedState("bench"), fetched_at=now, outcome="ok", status=200, error_kind=None, error=None,
                          duration_ms=0, items=items)
        http = HttpSettings(allow_private_addresses=True, per_host_concurrency=8, per_host_min_gap=0.0)
        opts = BatchOptions(topics_dir=str(ROOT / "seeds" / "topics"), now=now, runner=runner, beam_args=beam_args,
                            http=http, min_text_chars=200, extract_processes=extract_processes)
        c0, t0 = _cpu_seconds(), time.perf_counter()
        results = run_batch(store.pending_items(len(items)), [], opts, tmp / "batch")
        summary = store.load_batch("bench", results, now=datetime.now(UTC), runner=runner, started_at=now)
        elapsed, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        store.close()
        return elapsed, summary.dispositions, cpu
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _child_run(base: str, runner: str, beam_args: tuple[str, ...], procs: int, out, profile: str | None = None) -> None:
    pages = load_pages()
    bench_pipeline(warmup_pages(), base, runner, beam_args, procs)  # per-process costs, off the clock
    if profile is None:
        out.put(bench_pipeline(pages, base, runner, beam_args, procs))
    else:  # cProfile of the timed batch (this process only), for `python -m pstats FILE`
        import cProfile

        prof = cProfile.Profile()
        result = prof.runcall(bench_pipeline, pages, base, runner, beam_args, procs)
        prof.dump_stats(profile)
        out.put(result)
    from pipeline.stages.pool import shutdown_pools

    shutdown_pools()


def _in_child(base: str, runner: str, beam_args: tuple[str, ...], procs: int,
              profile: str | None = None) -> tuple[float, dict]:
    """One timed pipeline run in a fresh process (so no run inherits another's warm caches)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child_run, args=(base, runner, beam_args, procs, out, profile))
    proc.start()
    try:
        return out.get(timeout=1800)
    finally:
        proc.join(60)
        if proc.is_alive():  # it reported; do not let a stuck interpreter exit hold the run
            proc.terminate()
            proc.join(10)


def bench_stages(pages: list[Page]) -> list[tuple[str, float]]:
    """Each pure stage alone, in process, no Beam: where the time goes."""
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    extracted = [extract_article(p, min_chars=200, now=now) for p in pages]
    t1 = time.perf_counter()
    pairs = [(p.item, a) for p, a in zip(pages, extracted, strict=True) if not isinstance(a, Rejected)]
    fold_batch(pairs, [], DedupSettings())
    t2 = time.perf_counter()
    topics = load_topics(ROOT / "seeds" / "topics")
    for _, a in pairs:
        match_article(a.article_id, a.title, a.text, topics)
    t3 = time.perf_counter()
    return [("ExtractArticles (trafilatura + metadata)", t1 - t0), ("FoldStories", t2 - t1), ("MatchTopics", t3 - t2)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2, help="rounds of every variant; the best of each is reported")
    ap.add_argument("--skip-multi", action="store_true", help="skip the two-core variants")
    ap.add_argument("--profile", metavar="DIR", help="write a cProfile of each timed pipeline run to DIR/<variant>-<round>.prof "
                    "(profiled runs are slower: read their shares, not their ratios)")
    args = ap.parse_args()
    pages = load_pages()
    n = len(pages)
    print(f"{n} pages from the extraction corpus, {os.cpu_count()} cores")
    bench_bare(pages[:10])  # warm imports and caches

    variants = [("pipeline, FnApiRunner (1 process)", "FnApiRunner", (), 1)]
    if not args.skip_multi:
        variants.append(("pipeline, FnApiRunner, extraction x2 (2 cores)", "FnApiRunner", (), 2))
        variants.append(("pipeline, DirectRunner (2 processes)", "DirectRunner",
                         ("--direct_running_mode=multi_processing", "--direct_num_workers=2"), 1))
    bare_runs: list[tuple[float, float]] = []
    bare2_runs: list[float] = []
    runs: dict[str, list[tuple[float, dict, float]]] = {v[0]: [] for v in variants}
    server = PageServer(pages + warmup_pages())
    try:
        # Rounds, so that each figure meets the same spells of load as the others (the machine is
        # shared); every pipeline run is a fresh child process warmed on other pages only.
        if args.profile:
            os.makedirs(args.profile, exist_ok=True)
        for rnd in range(args.repeat):
            bare_runs.append(bench_bare(pages))
            if not args.skip_multi:
                bare2_runs.append(bench_bare_parallel(pages, 2))
            for i, (name, runner, beam_args, procs) in enumerate(variants):
                prof = os.path.join(args.profile, f"variant{i}-round{rnd}.prof") if args.profile else None
                runs[name].append(_in_child(server.base, runner, beam_args, procs, prof))
    finally:
        server.close()
    bare, bare_cpu = min(bare_runs)
    rows = [("bare trafilatura.extract (1 process)", bare, None, bare_cpu)]
    bare2 = None
    if bare2_runs:
        bare2 = min(bare2_runs)
        rows.append(("bare trafilatura.extract (2 processes)", bare2, None, None))
    for name, *_ in variants:
        t, disp, cpu = min(runs[name], key=lambda r: r[0])
        rows.append((name, t, disp, min(r[2] for r in runs[name])))
    stages = bench_stages(pages)
    f1_rows = extraction_f1(pages)

    # CPU seconds (all processes of the run but the web server's) are what one core must do, so
    # their ratio is what one process would reach on a free core: it moves much less with the
    # machine's load than the wall-clock ratio, which is the one the target is about.
    print(f"\n{'variant':<44} {'seconds':>8} {'pages/s':>8} {'ratio to bare':>14} {'to bare x2':>11}"
          f" {'CPU s':>7} {'CPU ratio':>10}")
    for name, t, _, cpu in rows:
        to2 = f"{bare2 / t:>11.2f}" if bare2 else ""
        cpus = f" {cpu:>7.2f} {bare_cpu / cpu:>10.2f}" if cpu else ""
        print(f"{name:<44} {t:>8.2f} {n / t:>8.1f} {bare / t:>14.2f} {to2}{cpus}")
    print("\nstage alone (in process, no Beam)")
    for name, t in stages:
        print(f"  {name:<42} {t:>8.2f} {n / t:>8.1f} {bare / t:>14.2f}")
    for name, _, disp, _ in rows:
        if disp is not None:
            print(f"dispositions ({name}): {disp}")
    print("\nextraction F1 against the corpus's expected texts (token bag-of-words; halves: even/odd pages)")
    print(f"  {'settings':<40} {'F1':>7} {'even':>7} {'odd':>7} {'seconds':>8}")
    for name, f1, even, odd, secs in f1_rows:
        print(f"  {name:<40} {f1:>7.4f} {even:>7.4f} {odd:>7.4f} {secs:>8.2f}")


if __name__ == "__main__":
    main()
