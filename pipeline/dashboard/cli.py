"""Commands: `newsmon dashboard` (serve the pages) and `newsmon report --out DIR` (write them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import ConfigError


def register(sub, common) -> None:
    p = sub.add_parser("dashboard", help="serve the analysts' web dashboard (read-only, beside the daemon)")
    common(p)
    p.add_argument("--host", help="address to bind (default: the settings' dashboard.host, 127.0.0.1); "
                   "anything but loopback needs $NEWSMON_DASHBOARD_TOKEN or basic auth")
    p.add_argument("--port", type=int, help="port (default: dashboard.port, 8050; 0 picks a free one)")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("report", help="write the dashboard's pages as a static site (HTML, CSV)")
    common(p)
    p.add_argument("--out", required=True, metavar="DIR", help="the site's folder (replaced when it exists)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first day (default: 30 days before --to)")
    p.add_argument("--to", dest="end", metavar="DATE", help="last day (default: today, UTC)")
    p.add_argument("--limit", type=int, default=25, metavar="N", help="top N stories, each with its page (default 25)")
    p.set_defaults(func=cmd_report)


def _config(args: argparse.Namespace):
    from pipeline import config

    return config.load(args.config, sources_path=args.sources, data_dir=args.data_dir, feeds_required=False)


def _store_dir(cfg) -> Path:
    d = Path(cfg.data_dir)
    if not (d / "catalog.sqlite").exists():
        raise ConfigError(f"no newsmon store at {d} (catalog.sqlite missing); pass the right --data-dir, "
                          "or run `newsmon demo` / `newsmon run --once` first")
    return d


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pipeline.dashboard.serve import resolve_access, serve

    cfg = _config(args)
    dash = cfg.settings.dashboard
    host = args.host or dash.host
    port = dash.port if args.port is None else args.port
    access = resolve_access(host, dash)
    return serve(_store_dir(cfg), host, port, access, dash.threads, sys.stdout)


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.dashboard.queries import Filters
    from pipeline.dashboard.report import write_report

    cfg = _config(args)
    try:
        f = Filters.parse({"from": args.start or "", "to": args.end or "", "limit": str(args.limit)})
    except ValueError as e:
        raise ConfigError(f"report: {e}") from None
    if args.start is None:
        f = Filters.default(f.end)
        f = Filters(f.start, f.end, "", args.limit)
    written = write_report(_store_dir(cfg), Path(args.out), f,
                           progress=lambda name: print(f"  wrote {name}", file=sys.stderr) if args.verbose else None)
    print(f"report: {len(written)} pages in {Path(args.out).resolve()} ({f.start} to {f.end}); "
          f"open {Path(args.out).resolve() / 'index.html'}")
    return 0
