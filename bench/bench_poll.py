"""Poll-cycle benchmark: N feeds (2,000 by default) through the real `Daemon.poll`.

    .venv/bin/python bench/bench_poll.py [--feeds 2000] [--cycles 4] [--hosts 16] [--workers 32]

The feeds are served from loopback only, by a separate process (so the server's CPU is not
counted as the poller's): `--hosts` FaultServers, one per address 127.0.0.1, 127.0.0.2, ...
(127.0.0.x addresses bind on Linux). Spreading the feeds over several hosts keeps the default
per-host limits (2 requests in flight per host, no gap in this run) instead of raising them: with
one host, 2,000 feeds would be serialised two at a time.

Mix (after the first cycle, where every feed is new): 80 % answer 304 (honest ETag), 10 % send
the same body again without validators (a 200 skipped by the body hash), 10 % publish a new item
before every cycle. The daemon's clock is injected and moves 8 h per cycle so every feed is due.
Per cycle it prints wall time, the part of it spent committing to the store (one
`Store.record_polls` transaction per chunk of completed polls, on the daemon's thread while the workers fetch),
that part's share of the wall time and the number of commits, CPU
per feed (time.process_time of this process: poller, parser and store, DuckDB's threads
included), the committing thread's CPU per feed (time.thread_time around record_polls), the
requests the server saw, and the share of fetches answered by 304 or the hash skip.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import config  # noqa: E402
from pipeline.daemon import Daemon  # noqa: E402
from tests.fetch.faultserver import FaultServer  # noqa: E402


def kind_of(i: int) -> str:
    r = i % 10
    return "news" if r == 0 else "plain" if r == 1 else "stable"


def feed_path(i: int) -> str:
    return f"/{kind_of(i)}-{i}.xml"


def serve(n_feeds: int, n_hosts: int, conn) -> None:
    """The server process: feeds on n_hosts loopback addresses; 'publish' adds news items."""
    servers = [FaultServer(f"127.0.0.{h + 1}", keep_requests=False).start() for h in range(n_hosts)]
    for i in range(n_feeds):
        srv = servers[i % n_hosts]
        srv.feed(feed_path(i), mode="plain" if kind_of(i) == "plain" else "honest", items=5)
    conn.send([s.port for s in servers])
    while True:
        cmd = conn.recv()
        if cmd == "publish":
            for i in range(n_feeds):
                if kind_of(i) == "news":
                    servers[i % n_hosts].publish(feed_path(i))
            conn.send("ok")
        elif cmd == "hits":
            conn.send(sum(sum(s.hits.values()) for s in servers))
        else:
            break
    for s in servers:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--workers", type=int, default=32)
    args = ap.parse_args()

    parent, child = mp.Pipe()
    proc = mp.Process(target=serve, args=(args.feeds, args.hosts, child), daemon=True)
    proc.start()
    ports = parent.recv()
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        sources = Path(tmp) / "sources.yaml"
        lines = ["feeds:"]
        for i in range(args.feeds):
            h = i % args.hosts
            lines += [f"  - id: f{i}", f"    url: http://127.0.0.{h + 1}:{ports[h]}{feed_path(i)}",
                      "    interval_minutes: 15"]
        sources.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cfg = config.load(
            sources_path=sources,
            data_dir=Path(tmp) / "data",
            env={},
            overrides={
                "fetch.allow_private_addresses": True,
                "fetch.per_host_min_gap_seconds": 0,
                "fetch.workers": args.workers,
            },
        )
        now = [datetime(2026, 3, 2, tzinfo=UTC)]
        daemon = Daemon(cfg, clock=lambda: now[0], notifiers=[])
        store_seconds = [0.0, 0.0, 0]  # wall, CPU of the committing thread, commits
        outcomes: Counter[str] = Counter()
        record = daemon.store.record_polls

        def timed_record(polls):
            t, c = time.perf_counter(), time.thread_time()
            try:
                return record(polls)
            finally:
                store_seconds[0] += time.perf_counter() - t
                store_seconds[1] += time.thread_time() - c
                store_seconds[2] += 1
                outcomes.update(p.outcome for p in polls)

        daemon.store.record_polls = timed_record  # type: ignore[method-assign]
        print(f"{args.feeds} feeds on {args.hosts} loopback hosts, {args.workers} workers, "
              f"per-host concurrency {cfg.settings.fetch.per_host_concurrency}")
        print("cycle  wall_s  store_s  share  commits  cpu_ms/feed  store_cpu_ms/feed  requests  304  unchanged  ok  errors  304+skip")
        totals: Counter[str] = Counter()
        try:
            for cycle in range(1, args.cycles + 1):
                if cycle > 1:
                    parent.send("publish")
                    parent.recv()
                parent.send("hits")
                hits_before = parent.recv()
                outcomes.clear()
                store_seconds[:] = [0.0, 0.0, 0]
                wall, cpu = time.perf_counter(), time.process_time()
                summary = daemon.poll()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                parent.send("hits")
                requests = parent.recv() - hits_before
                polled = sum(outcomes.values())
                skip = outcomes["not_modified"] + outcomes["unchanged"]
                print(
                    f"{cycle:5d}  {wall:6.1f}  {store_seconds[0]:7.1f}  {100 * store_seconds[0] / wall:4.0f}%  "
                    f"{store_seconds[2]:7d}  {1000 * cpu / max(1, polled):11.2f}  "
                    f"{1000 * store_seconds[1] / max(1, polled):17.2f}  {requests:8d}  {outcomes['not_modified']:4d}  "
                    f"{outcomes['unchanged']:9d}  {outcomes['ok']:3d}  {summary.errors:6d}  "
                    f"{100 * skip / max(1, polled):7.1f}%"
                )
                if cycle > 1:
                    totals.update(outcomes)
                now[0] += timedelta(hours=8)
            polled = sum(totals.values())
            if polled:
                skip = totals["not_modified"] + totals["unchanged"]
                print(f"cycles 2-{args.cycles}: {100 * skip / polled:.1f}% of fetches answered by 304 or the hash skip "
                      f"({totals['not_modified']} x 304, {totals['unchanged']} x hash skip, {totals['ok']} parsed)")
        finally:
            daemon.close()
            parent.send("stop")
            proc.join(timeout=10)


if __name__ == "__main__":
    main()
