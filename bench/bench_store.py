"""Store benchmark: analyst queries, key probes and commits on synthetic stores, maintenance on/off.

    .venv/bin/python bench/bench_store.py [--articles 1000000,10000000] [--batches 5000]
    .venv/bin/python bench/bench_store.py --small        # CI size: 5,000 articles, 40 batches
    .venv/bin/python bench/bench_store.py --key-sets     # the writer's key-set probe at 100k/1M/10M keys

For each size it
1. builds a store through the project's own schema (Store.open runs the migrations) with bulk
   INSERT ... SELECT over generated series: hash ids (md5, not sequential), a year of history
   ending now, ~3 articles per story, 10% exact copies, 5% failures, 2,000 feeds/outlets, 6% of
   articles matching one of 20 topics at alert level and 9% at mention level, short texts
   (`--text-words`, default 30 words; the README's growth figure is measured with real-length text
   by `--growth`). Rollups are filled by `rollups.rebuild`, as migration 005 does. One INSERT per
   million rows and table: the layout of a freshly compacted store.
2. measures that store ("fresh"): the dashboards, the per-day x topic trend over all history
   from the rollups and (`--base-trend`) from the base tables as before the rollups, the load-time
   key probes, a batch commit, a 100-poll commit, and `newsmon query "SELECT 1"` end to end;
3. copies it twice and simulates `--batches` daemon batches (20 items each, through
   `Store.record_polls` and `Store.load_batch`, a minute apart on the daemon's clock) on both,
   with maintenance every `--maintain-every` batches on one copy and never on the other;
4. measures both copies again, then compacts the "on" copy fully and measures it once more: the
   "freshly compacted" reference. Ratios are against that reference, in the same run.

Query times are medians of `--repeat` runs on an open reader (a notebook session); what opening
a reader costs is `open_reader`, and `cli_select_1` is `newsmon query "SELECT 1"` end to end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.models import Article, Evidence, FeedItem, FeedState, ItemResult, StoryAssignment, TopicMatch  # noqa: E402
from pipeline.store import PollRecord, Store, rollups  # noqa: E402
from pipeline.store.maintenance import MaintenanceSettings, maintain, store_health  # noqa: E402

DASHBOARDS = ROOT / "dashboards"
FEEDS = 2000
TOPICS = 20
CHUNK = 1_000_000
VOCAB = 2000

TREND_ALL = """
SELECT CAST(bucket AS DATE) AS day, value AS topic, sum(articles) AS articles, sum(stories) AS stories,
       sum(outlets) AS outlets, sum(wire_articles) / sum(articles) AS wire_share
FROM rollup_counts WHERE grain = 'day' AND dim = 'topic' GROUP BY ALL ORDER BY day, topic
"""
# The same figures from the base tables: what the trend cost before the rollups.
TREND_BASE = """
SELECT CAST(date_trunc('day', tm.matched_at) AS DATE) AS day, tm.topic, count(*) AS articles,
       count(DISTINCT tm.story_id) AS stories, count(DISTINCT coalesce(a.sitename, a.feed_id)) AS outlets
FROM topic_matches tm JOIN articles a USING (article_id)
WHERE tm.level = 'alert' GROUP BY ALL ORDER BY day, tm.topic
"""


def h(expr: str, mod: int) -> str:
    """A deterministic pseudo-random integer in [0, mod) from an expression (DuckDB hash)."""
    return f"CAST(hash({expr}) % {mod} AS BIGINT)"


def build(data: Path, n: int, end: datetime, text_words: int, log: Callable[[str], None]) -> None:
    """A store of `n` articles over the year before `end`, through the project's schema."""
    span = 365 * 86400
    start = end - timedelta(seconds=span)
    store = Store.open(data)
    con = store._con  # noqa: SLF001 - a bench fills the tables in bulk
    vocab = [f"w{i:04d}" for i in range(VOCAB)]
    con.execute("CREATE OR REPLACE TEMP TABLE vocab AS SELECT ?::VARCHAR[] AS ws", [vocab])
    t0 = time.perf_counter()
    ts = f"(TIMESTAMPTZ '{start.isoformat()}' + to_seconds(CAST(i AS DOUBLE) * {span} / {n}))"
    outlet = f"'Outlet ' || {h('i // 3', FEEDS)}"
    feed = f"'f' || {h('i // 3', FEEDS)}"
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        rng = f"(SELECT range AS i FROM range({lo}, {hi}))"
        con.execute("BEGIN TRANSACTION")
        con.execute(f"""
            INSERT INTO lake.articles BY NAME
            SELECT left(md5('a' || i), 20) AS article_id, left(md5('i' || i), 20) AS item_id, {feed} AS feed_id,
                   'https://news.example/' || left(md5('a' || i), 20) AS url,
                   'https://news.example/' || left(md5('a' || i), 20) AS canonical_url,
                   'Title ' || i AS title,
                   array_to_string(list_transform(range({text_words}), x -> v.ws[1 + {h('i * 131 + x', VOCAB)}]), ' ') AS text,
                   {ts} - INTERVAL 1 HOUR AS published, NULL AS author, {outlet} AS sitename, 'en' AS language,
                   left(md5('t' || i), 16) AS text_hash, {ts} AS fetched_at, {ts} AS stored_at,
                   left(md5('s' || (i // 3)), 20) AS story_id,
                   CASE WHEN i % 3 = 0 THEN 'original' ELSE 'rewrite' END AS link,
                   CASE WHEN i % 3 = 0 THEN NULL ELSE left(md5('a' || (i - i % 3)), 20) END AS matched_article_id,
                   0.8 AS link_score, 'b' || (i // 20) AS batch_id,
                   CASE WHEN {h('i * 7', 10)} = 0 THEN 'Reuters' END AS wire_agency
            FROM {rng}, vocab v""")
        con.execute(f"""
            INSERT INTO lake.items BY NAME
            SELECT left(md5('i' || i), 20) AS item_id, {feed} AS feed_id, 'g' || i AS guid,
                   'https://news.example/' || left(md5('a' || i), 20) AS url, 'Title ' || i AS title, '' AS summary,
                   {ts} - INTERVAL 1 HOUR AS published, {ts} AS seen_at, 'stored' AS disposition,
                   {ts} AS disposition_at, NULL AS detail, left(md5('a' || i), 20) AS article_id,
                   'b' || (i // 20) AS batch_id
            FROM {rng}
            UNION ALL  -- exact copies (10%) and failures (5%) beside the stored articles
            SELECT left(md5('c' || i), 20), 'f' || {h('i * 5', FEEDS)}, 'gc' || i, 'https://copy.example/' || i,
                   'Copy ' || i, '', {ts}, {ts}, CASE WHEN i % 20 < 2 THEN 'exact_copy' ELSE 'too_short' END,
                   {ts}, NULL, CASE WHEN i % 20 < 2 THEN left(md5('a' || i), 20) END, 'b' || (i // 20)
            FROM {rng} WHERE i % 20 < 3""")
        con.execute(f"""
            INSERT INTO lake.story_members BY NAME
            SELECT left(md5('s' || (i // 3)), 20) AS story_id, left(md5('a' || i), 20) AS article_id,
                   left(md5('i' || i), 20) AS item_id, {feed} AS feed_id, {outlet} AS sitename,
                   'https://news.example/' || left(md5('a' || i), 20) AS url,
                   CASE WHEN i % 3 = 0 THEN 'original' ELSE 'rewrite' END AS link,
                   NULL AS matched_article_id, 0.8 AS score, {ts} - INTERVAL 1 HOUR AS published, {ts} AS seen_at
            FROM {rng}
            UNION ALL
            SELECT left(md5('s' || (i // 3)), 20), left(md5('a' || i), 20), left(md5('c' || i), 20),
                   'f' || {h('i * 5', FEEDS)}, NULL, 'https://copy.example/' || i, 'exact_copy',
                   left(md5('a' || i), 20), 1.0, {ts}, {ts}
            FROM {rng} WHERE i % 20 < 2""")
        con.execute(f"""
            INSERT INTO lake.stories BY NAME
            SELECT left(md5('s' || (i // 3)), 20) AS story_id, left(md5('a' || i), 20) AS first_article_id,
                   {feed} AS first_feed_id, {outlet} AS first_sitename, {ts} AS first_seen_at,
                   'Title ' || i AS title, CASE WHEN {h('i * 7', 10)} = 0 THEN 'Reuters' END AS wire_agency
            FROM {rng} WHERE i % 3 = 0""")
        con.execute(f"""
            INSERT INTO lake.topic_matches BY NAME
            SELECT left(md5('a' || i), 20) AS article_id, left(md5('s' || (i // 3)), 20) AS story_id,
                   't' || {h('i // 3', TOPICS)} AS topic, 0.8 AS score,
                   CASE WHEN {h('i * 11', 100)} < 6 THEN 'alert' ELSE 'mention' END AS level,
                   '[]' AS evidence, {ts} AS matched_at
            FROM {rng} WHERE {h('i * 11', 100)} < 15""")
        con.execute("COMMIT")
        log(f"  built {hi:,} of {n:,} articles ({time.perf_counter() - t0:.0f} s)")
    with store.transaction() as c:
        c.execute("""
            INSERT INTO lake.alert_outbox BY NAME
            SELECT left(md5(topic || story_id), 20) AS alert_id, topic, story_id, article_id, score,
                   '{}' AS payload, matched_at AS created_at
            FROM lake.topic_matches WHERE level = 'alert'
            QUALIFY row_number() OVER (PARTITION BY topic, story_id ORDER BY matched_at, article_id) = 1
            ORDER BY created_at""")  # in time order, as a daemon appends them
        c.execute(f"""
            INSERT INTO lake.feed_state BY NAME
            SELECT 'f' || range AS feed_id, 'W/"e' || range || '"' AS etag, TIMESTAMPTZ '{end.isoformat()}' AS last_attempt_at,
                   TIMESTAMPTZ '{end.isoformat()}' AS last_success_at, 304 AS last_status, 0 AS error_streak,
                   TIMESTAMPTZ '{end.isoformat()}' + INTERVAL 15 MINUTE AS next_due_at, 0 AS items_total
            FROM range({FEEDS})""")
        rollups.rebuild(c, end)
    log(f"  alerts, feed states and rollups ({time.perf_counter() - t0:.0f} s)")
    store.close()


def relocate(src: Path, dst: Path) -> None:
    """Copy a store; the catalog names its data path, so point it at the copy."""
    shutil.copytree(src, dst)
    with sqlite3.connect(dst / "catalog.sqlite") as db:
        db.execute("UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path'", [f"{dst / 'lake'}/"])


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def dashboards() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(DASHBOARDS.glob("*.sql"))}


def measure(data: Path, repeat: int, *, base_trend: bool, rng: random.Random) -> dict[str, float]:
    """Query and probe times (s) on an open reader (as in a notebook), plus what opening one costs
    (`open_reader`: attach and a first query) and `newsmon query "SELECT 1"` end to end."""
    out: dict[str, float] = {}

    def opened() -> None:
        with Store.open(data, read_only=True) as s:
            s.query("SELECT 1")

    out["open_reader"] = median_time(opened, repeat)
    with Store.open(data, read_only=True) as s:
        s.query("SELECT count(*) FROM articles")  # warm the catalog cache as a session would
        out["trend_all_history"] = median_time(lambda: s.query(TREND_ALL), repeat)
        for name, sql in dashboards().items():
            out[f"dash_{name}"] = median_time(lambda sql=sql: s.query(sql), repeat)
        if base_trend:
            out["trend_base_tables"] = median_time(lambda: s.query(TREND_BASE), 1)
        n = s.scalar("SELECT count(*) FROM articles")
        probes = {}
        for table, key in (("items", "item_id"), ("articles", "article_id"), ("stories", "story_id")):
            _, known = s.query(f"SELECT {key} FROM {table} USING SAMPLE 250 ROWS")
            probes[table] = [f"{rng.getrandbits(80):020x}" for _ in range(250)] + [r[0] for r in known]
        # What the probe cost before the key sets: the key column scanned (a reader still does that).
        out["probe_known_items_scan"] = median_time(lambda: s.known_item_ids(probes["items"]), repeat)
        out["probe_pending_items"] = median_time(lambda: s.pending_items(2000), repeat)
    out["articles"] = float(n)
    # The writer's key sets (store/keys.py): loaded once at the first probe, then probed in memory.
    with Store.open(data) as w:
        t = time.perf_counter()
        sizes = w.key_set_sizes()
        out["key_sets_load_s"] = time.perf_counter() - t
        out["key_sets_mb"] = sum(b for _, b in sizes.values()) / 1e6
        assert w.known_item_ids(probes["items"]) == set(probes["items"][250:]), "key set disagrees with the table"
        out["probe_known_items"] = median_time(lambda: w.known_item_ids(probes["items"]), repeat)
        for table in ("articles", "stories"):
            ks = w._key_set(table)  # noqa: SLF001 - the probe load_batch makes
            out[f"probe_known_{table}"] = median_time(lambda ks=ks, p=probes[table]: ks.known(p), repeat)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.cli", "query", "--data-dir", str(data), "SELECT 1"],
                   check=True, capture_output=True)
    out["cli_select_1"] = time.perf_counter() - t
    return out


class Simulator:
    """Daemon-like commits: a 100-poll chunk and a 20-item batch per simulated minute."""

    def __init__(self, start: datetime, seed: int) -> None:
        self.now = start
        self.rng = random.Random(seed)
        self.k = 0
        self.recent: list[tuple[str, str]] = []  # (story id, article id)

    def step(self, store: Store) -> tuple[float, float]:
        """One minute: returns (poll commit s, batch commit s)."""
        self.now += timedelta(minutes=1)
        self.k += 1
        rng, now = self.rng, self.now
        items = [
            FeedItem(f"sim{self.k:06d}x{j:02d}{rng.getrandbits(40):010x}", f"f{rng.randrange(FEEDS)}", f"g{self.k}-{j}",
                     f"https://sim.example/{self.k}/{j}", f"Sim {self.k} {j}", "", now, now)
            for j in range(20)
        ]
        polls = [
            PollRecord(FeedState(f"f{(self.k * 100 + j) % FEEDS}", etag='W/"e"', last_attempt_at=now,
                                 last_success_at=now, last_status=304, next_due_at=now + timedelta(minutes=15)),
                       now, "not_modified", 304, None, None, 12.0, ())
            for j in range(100)
        ]
        by_feed: dict[str, list[FeedItem]] = {}
        for it in items:
            by_feed.setdefault(it.feed_id, []).append(it)
        polls += [PollRecord(FeedState(f, last_attempt_at=now, last_status=200, next_due_at=now + timedelta(minutes=15)),
                             now, "ok", 200, None, None, 30.0, tuple(its)) for f, its in by_feed.items()]
        t = time.perf_counter()
        store.record_polls(polls)
        t_poll = time.perf_counter() - t
        results = []
        for it in items:
            r = rng.random()
            if r < 0.1:
                results.append(ItemResult(it, "too_short", "80 chars"))
                continue
            aid = f"{rng.getrandbits(80):020x}"
            art = Article(aid, it.item_id, it.feed_id, it.url, it.url, it.title, "sim text " * 40, now, None,
                          f"Outlet {it.feed_id[1:]}", "en", aid[:16], now)
            if self.recent and r < 0.2:
                sid, first = rng.choice(self.recent)
                results.append(ItemResult(it, "exact_copy", "same text", art, StoryAssignment(aid, sid, "exact_copy", first, 1.0)))
                continue
            if self.recent and r < 0.6:
                sid, first = rng.choice(self.recent)
                asg = StoryAssignment(aid, sid, "rewrite", first, 0.7)
            else:
                sid = f"{rng.getrandbits(80):020x}"
                asg = StoryAssignment(aid, sid, "original", None, 1.0)
                self.recent = (self.recent + [(sid, aid)])[-200:]
            roll = rng.random()
            matches = ()
            if roll < 0.15:
                lvl = "alert" if roll < 0.06 else "mention"
                matches = (TopicMatch(aid, f"t{rng.randrange(TOPICS)}", 0.8, lvl, (Evidence("rule", "r", "title", ()),),
                                      alert=lvl == "alert"),)
            results.append(ItemResult(it, "stored", None, art, asg, matches, "Reuters" if rng.random() < 0.1 else None))
        t = time.perf_counter()
        store.load_batch(f"sim-{self.k}", results, now=now, runner="bench", started_at=now)
        return t_poll, time.perf_counter() - t


def simulate(data: Path, batches: int, start: datetime, *, maintain_every: int | None, log: Callable[[str], None]) -> dict[str, float]:
    sim = Simulator(start, seed=1)
    settings = MaintenanceSettings(snapshot_retention=timedelta(seconds=60), file_grace=timedelta(0))
    polls, loads, maint = [], [], []
    with Store.open(data) as store:
        t0 = time.perf_counter()
        for b in range(1, batches + 1):
            tp, tl = sim.step(store)
            polls.append(tp)
            loads.append(tl)
            if maintain_every and b % maintain_every == 0:
                t = time.perf_counter()
                maintain(store, settings, sim.now)
                maint.append(time.perf_counter() - t)
            if b % max(1, batches // 10) == 0:
                log(f"  {data.name}: {b:,} of {batches:,} batches ({time.perf_counter() - t0:.0f} s); "
                    f"last 10%: poll commit {statistics.mean(polls[-batches // 10:]):.3f} s, "
                    f"batch commit {statistics.mean(loads[-batches // 10:]):.3f} s")
    tail = max(1, batches // 10)
    return {
        "poll_commit_first10": statistics.mean(polls[:tail]),
        "poll_commit_last10": statistics.mean(polls[-tail:]),
        "batch_commit_first10": statistics.mean(loads[:tail]),
        "batch_commit_last10": statistics.mean(loads[-tail:]),
        "maintenance_runs": float(len(maint)),
        "maintenance_mean_s": statistics.mean(maint) if maint else 0.0,
        "maintenance_max_s": max(maint) if maint else 0.0,
        "sim_end": sim.now.timestamp(),
    }


def health(data: Path) -> dict[str, float]:
    with Store.open(data, read_only=True) as s:
        hh = store_health(s)
    lake = sum(p.stat().st_size for p in (data / "lake").rglob("*") if p.is_file())
    return {**{k: float(v) for k, v in hh.as_dict().items()}, "lake_bytes_on_disk": float(lake)}


def table(rows: dict[str, dict[str, float]], cols: list[str]) -> str:
    keys = sorted({k for c in cols for k in rows[c]}, key=lambda k: (k.startswith("probe"), k))
    out = [f"{'':28}" + "".join(f"{c:>16}" for c in cols)]
    for k in keys:
        out.append(f"{k:28}" + "".join(f"{rows[c].get(k, float('nan')):16.4g}" for c in cols))
    return "\n".join(out)


def key_set_scaling(repeat: int) -> None:
    """The writer's key-set probe (store/keys.py) at 100k, 1M and 10M keys, without building stores:
    500 ids (half stored) per probe, as a poll chunk or a batch asks; ratios to 100k in one run.
    CPU time (process_time) medians: on a shared machine the wall time of a millisecond is noise."""
    import numpy as np

    from pipeline.store.keys import KeySet, key_hash

    def cpu(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(max(repeat, 7)):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
        return statistics.median(times)

    rng = random.Random(11)
    base = None
    log("keys        probe_500_cpu_ms  ratio  add_120_cpu_ms  build_cpu_s   MB")
    for n in (100_000, 1_000_000, 10_000_000):
        stored = [f"{rng.getrandbits(80):020x}" for _ in range(250)]
        hashes = np.random.default_rng(n).integers(0, 2**64 - 1, size=n - 250, dtype=np.uint64, endpoint=True)
        t = time.process_time()
        ks = KeySet(np.concatenate([hashes, np.array([key_hash(k) for k in stored], dtype=np.uint64)]))
        build_s = time.process_time() - t
        probe = stored + [f"{rng.getrandbits(80):020x}" for _ in range(250)]
        assert ks.known(probe) == set(stored)
        probe_s = cpu(lambda ks=ks, probe=probe: ks.known(probe))
        fresh = iter([[f"{rng.getrandbits(80):020x}" for _ in range(120)] for _ in range(max(repeat, 7))])
        add_s = cpu(lambda ks=ks, fresh=fresh: ks.add(next(fresh)))
        base = base or probe_s
        log(f"{n:>10,}  {1000 * probe_s:16.2f}  {probe_s / base:5.2f}  {1000 * add_s:14.2f}  {build_s:11.2f}  {ks.nbytes / 1e6:5.0f}")


def log(msg: str) -> None:
    print(msg, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", default="1000000", help="comma-separated sizes (default 1000000)")
    ap.add_argument("--batches", type=int, default=5000, help="simulated daemon batches per copy (0: measure the fresh store only)")
    ap.add_argument("--off-batches", type=int, help="batches for the maintenance-off copy (default: --batches); "
                    "its commits slow as snapshots pile up, so a long comparison can stop it earlier")
    ap.add_argument("--maintain-every", type=int, default=60, help="batches between maintenance runs (on copy)")
    ap.add_argument("--text-words", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--base-trend", action="store_true", help="also time the trend from the base tables")
    ap.add_argument("--parallel", action="store_true", help="simulate the on and off copies at the same time (2 processes)")
    ap.add_argument("--key-sets", action="store_true", help="only the key-set probe at 100k, 1M and 10M keys")
    ap.add_argument("--small", action="store_true", help="CI size: 5,000 articles, 40 batches")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON {size: {store: {figure: value}}}")
    ap.add_argument("--dir", help="where to build (default: a temporary directory, removed after)")
    args = ap.parse_args()
    if args.key_sets:
        key_set_scaling(args.repeat)
        return
    if args.small:
        args.articles, args.batches, args.maintain_every, args.repeat, args.base_trend = "5000", 40, 10, 1, True
    sizes = [int(x) for x in args.articles.split(",")]


    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-store-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    figures: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for n in sizes:
            end = datetime.now(UTC).replace(microsecond=0)
            base = root / f"base-{n}"
            shutil.rmtree(base, ignore_errors=True)
            log(f"== {n:,} articles: building")
            t = time.perf_counter()
            build(base, n, end, args.text_words, log)
            build_s = time.perf_counter() - t
            res: dict[str, dict[str, float]] = {}
            figures[str(n)] = res
            res["fresh"] = {**measure(base, args.repeat, base_trend=args.base_trend, rng=rng), **health(base),
                            "build_s": build_s}
            if args.batches == 0:  # the fresh store only
                log(f"\n== {n:,} articles: fresh store (seconds, counts, bytes)")
                log(table(res, ["fresh"]))
                f = res["fresh"]
                log(f"\nstore size: lake {f['lake_bytes_on_disk'] / 1e6:.0f} MB + catalog {f['catalog_bytes'] / 1e6:.1f} MB "
                    f"for {n:,} articles ({args.text_words}-word texts)")
                continue
            on, off = root / f"on-{n}", root / f"off-{n}"
            for d in (on, off):
                shutil.rmtree(d, ignore_errors=True)
                relocate(base, d)
            off_batches = args.off_batches or args.batches
            log(f"== {n:,} articles: {args.batches:,} batches with maintenance every {args.maintain_every} (on), "
                f"{off_batches:,} without (off)")
            if args.parallel:  # the two copies in two processes: each its own writer, as two daemons
                with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                    f_on = pool.submit(simulate, on, args.batches, end, maintain_every=args.maintain_every, log=log)
                    f_off = pool.submit(simulate, off, off_batches, end, maintain_every=None, log=log)
                    sim_on, sim_off = f_on.result(), f_off.result()
            else:
                sim_on = simulate(on, args.batches, end, maintain_every=args.maintain_every, log=log)
                sim_off = simulate(off, off_batches, end, maintain_every=None, log=log)
            res["maint_off"] = {**measure(off, args.repeat, base_trend=args.base_trend, rng=rng), **health(off), **sim_off}
            res["maint_on"] = {**measure(on, args.repeat, base_trend=args.base_trend, rng=rng), **health(on), **sim_on}
            with Store.open(on) as s:
                t = time.perf_counter()
                maintain(s, MaintenanceSettings(snapshot_retention=timedelta(0), file_grace=timedelta(0)),
                         datetime.fromtimestamp(sim_on["sim_end"], UTC))
                full_s = time.perf_counter() - t
            res["compacted"] = {**measure(on, args.repeat, base_trend=args.base_trend, rng=rng), **health(on),
                                "full_maintenance_s": full_s}
            log(f"\n== {n:,} articles: results (seconds, counts, bytes)")
            log(table(res, ["fresh", "maint_off", "maint_on", "compacted"]))
            log("\nratios to the freshly compacted store (same run):")
            for k in sorted(res["compacted"]):
                if k.startswith(("trend", "dash", "probe", "cli", "open")):
                    c = res["compacted"][k]
                    log(f"  {k:28} on {res['maint_on'][k] / c:6.2f}x   off {res['maint_off'][k] / c:6.2f}x")
            f = res["fresh"]
            log(f"\nstore size: lake {f['lake_bytes_on_disk'] / 1e6:.0f} MB + catalog {f['catalog_bytes'] / 1e6:.1f} MB "
                f"for {n:,} articles ({args.text_words}-word texts): "
                f"{(f['lake_bytes_on_disk'] + f['catalog_bytes']) / n * 1e6 / 1e9:.2f} GB per million articles")
            if not args.dir:
                for d in (base, on, off):
                    shutil.rmtree(d, ignore_errors=True)
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1), encoding="utf-8")
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
