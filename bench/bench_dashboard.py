"""Dashboard benchmark: how long each page takes on a large store against a small one, one run.

    .venv/bin/python bench/bench_dashboard.py                      # 1M against 10,000 articles
    .venv/bin/python bench/bench_dashboard.py --articles 20000,2000 --repeat 2   # quick
    .venv/bin/python bench/bench_dashboard.py --browser            # also in headless Chromium

Each store is built by bench_store.build (the project's schema, a year of history ending now,
rollups filled as migration 005 does), plus one batch row per 20 articles. The dashboard then
serves it from the real server (waitress, loopback), and each page is fetched over HTTP: the
first request (which opens the reader) and the median of `--repeat` more. With --browser, the
median time from navigation to the load event in Chromium (charts are inline SVG drawn on the
server, so every chart is on screen by then) is measured too, cold (empty
browser caches) and warm (after every page was shown once), and the warm first contentful paint. The pages use the
default filters (the last 30 days; a topic page for one topic); a story page for the top story.
Printed: milliseconds per page and size, and the large/small ratio (1.0: the page costs the same
whatever the store holds). `*_cpu`: the CPU time this process (the server, its DuckDB threads and
the HTTP client) spent on one request, median: what a page costs whatever else the machine runs,
where the wall times above grow with the load of a shared machine.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from bench_store import build  # noqa: E402

from pipeline.dashboard.serve import Access, DashboardServer  # noqa: E402
from pipeline.store import Store  # noqa: E402

BUDGET_MS = 1000


def add_batches(data: Path) -> str:
    """One batch row per 20 articles (as the daemon writes them) and the feeds of sources.yaml;
    returns the top story of the last 7 days for the story page."""
    with Store.open(data) as s, s.transaction() as con:
        con.execute("""
            INSERT INTO lake.batches BY NAME
            SELECT batch_id, min(stored_at) AS started_at, max(stored_at) AS finished_at, 'FnApiRunner' AS runner,
                   count(*)::INTEGER AS items, count(*)::INTEGER AS stored, 0 AS alerts,
                   1.5 + (hash(batch_id) % 100) / 50.0 AS duration_seconds
            FROM lake.articles GROUP BY batch_id ORDER BY started_at""")
        con.execute("""
            INSERT INTO lake.feeds BY NAME
            SELECT feed_id, 'https://news.example/' || feed_id || '.xml' AS url, 'Feed ' || feed_id AS name,
                   [] AS tags, 15.0 AS interval_minutes, true AS enabled, last_success_at AS updated_at
            FROM lake.feed_state""")
    with Store.open(data, read_only=True) as s:
        return s.scalar("SELECT story_id FROM story_members WHERE seen_at >= now() - INTERVAL 7 DAY "
                        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")


def pages(story_id: str) -> dict[str, str]:
    return {"overview": "", "overview_topic": "?topic=t3", "stories": "stories", "story": f"story/{story_id}",
            "topics": "topics?topic=t3", "feeds": "feeds", "csv_top_stories": "csv/stories/top_stories.csv"}


def measure_http(url: str, paths: dict[str, str], repeat: int) -> dict[str, float]:
    out = {}
    with httpx.Client(timeout=120) as c:
        for name, p in paths.items():
            t = time.perf_counter()
            r = c.get(url + p)
            r.raise_for_status()
            out[f"{name}_first"] = (time.perf_counter() - t) * 1000
            times, cpu = [], []
            for _ in range(repeat):
                t, tc = time.perf_counter(), time.process_time()
                c.get(url + p).raise_for_status()
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - tc) * 1000)
            out[name] = statistics.median(times)
            out[f"{name}_cpu"] = statistics.median(cpu)
    return out


def measure_browser(url: str, paths: dict[str, str], repeat: int) -> dict[str, float]:
    """Per page, in Chromium: the median time from navigation to the load event, cold (a new
    browser context each time, in a browser that has started: empty HTTP and code caches) and warm (one context that has shown
    every page once), and the warm first contentful paint (facts and tables on screen)."""
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    out: dict[str, float] = {}
    fcp_js = "() => (performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1}).startTime"

    def visit(page, p: str) -> tuple[float, float]:
        t = time.perf_counter()
        page.goto(url + p, wait_until="load")  # the charts are SVG in the HTML: drawn by then
        assert page.locator("div.plot svg").count() == page.locator("div.plot").count()
        return (time.perf_counter() - t) * 1000, float(page.evaluate(fcp_js))

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=flags, headless=True)
        shown = {n: p for n, p in paths.items() if not n.startswith("csv")}
        # The browser's own start-up (its network service, the first renderer) belongs to no page:
        # paid once here, before the first cold page, as a user's running browser has paid it.
        ctx = b.new_context()
        ctx.new_page().goto(url + "healthz")
        ctx.close()
        for name, p in shown.items():
            cold = []
            for _ in range(repeat):
                ctx = b.new_context(viewport={"width": 1280, "height": 900})
                cold.append(visit(ctx.new_page(), p)[0])
                ctx.close()
            out[f"browser_cold_{name}"] = statistics.median(cold)
        ctx = b.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        for p in shown.values():  # every page once: assets cached, their code compiled
            visit(page, p)
        for name, p in shown.items():
            runs = [visit(page, p) for _ in range(repeat)]
            out[f"browser_warm_{name}"] = statistics.median(r[0] for r in runs)
            # Chromium leaves out the paint entry now and then on a page it has shown before
            # (-1 here): those runs have no figure, rather than a figure of -1.
            fcp = [r[1] for r in runs if r[1] >= 0]
            out[f"browser_warm_fcp_{name}"] = statistics.median(fcp) if fcp else float("nan")
        ctx.close()
        b.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", default="1000000,10000", help="large,small (default 1000000,10000)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--browser", action="store_true", help="also time each page in headless Chromium")
    ap.add_argument("--dir", help="where to build (default: a temporary directory, removed after)")
    ap.add_argument("--keep", action="store_true", help="reuse stores already built in --dir")
    args = ap.parse_args()
    sizes = [int(x) for x in args.articles.split(",")]
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-dash-"))
    root.mkdir(parents=True, exist_ok=True)
    res: dict[int, dict[str, float]] = {}
    try:
        for n in sizes:
            data = root / f"store-{n}"
            if not (args.keep and (data / "catalog.sqlite").exists()):
                shutil.rmtree(data, ignore_errors=True)
                print(f"== building {n:,} articles", flush=True)
                build(data, n, datetime.now(UTC).replace(microsecond=0), 30, lambda m: print(m, flush=True))
            story = add_batches(data) if not args.keep or not (data / ".batches").exists() else (data / ".batches").read_text()
            (data / ".batches").write_text(story)
            with DashboardServer(data, "127.0.0.1", 0, Access()) as srv:
                paths = pages(story)
                res[n] = measure_http(srv.url, paths, args.repeat)
                if args.browser:
                    res[n].update(measure_browser(srv.url, paths, args.repeat))
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    big, small = sizes[0], sizes[-1]
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end")
    print(f"\npage times, ms (median of {args.repeat}; *_first: the first request, which opens the reader)")
    print(f"{'page':28} {small:>12,} {big:>12,} {'ratio':>7}  <= {BUDGET_MS} ms at {big:,}")
    for k in res[big]:
        a, b = res[small][k], res[big][k]
        ratio = "-" if math.isnan(a) or math.isnan(b) else f"{b / a:.2f}"  # nan: no paint entry in any run
        verdict = "-" if math.isnan(b) else "yes" if b <= BUDGET_MS else "NO"
        print(f"{k:28} {a:12.0f} {b:12.0f} {ratio:>7}  {verdict}")


if __name__ == "__main__":
    main()
