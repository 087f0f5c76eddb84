"""The `newsmon` command.

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or input (the message names the file,
the line and the fix).

    newsmon run [--once]            the daemon (or one poll/batch/alert cycle)
    newsmon demo                    an offline end-to-end replay on bundled feeds
    newsmon check-config            validate the settings, sources and topics; print them (secrets masked)
    newsmon query "SQL"             query the store (works while the daemon runs)
    newsmon status [--dead-letters] feed health for operators; or the items given up for good
    newsmon maintain                compact the store now (the daemon also does it on a schedule)
    newsmon dedup --in --out        fold documents (JSON lines) into stories
    newsmon match --in --out        match documents (JSON lines) against the topics
    newsmon topics test|check|backtest   explain, verify and backtest topic definitions
    newsmon eval dedup|topics       measure quality against the pinned floors
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.errors import ConfigError, NewsmonError

log = logging.getLogger("newsmon")


# --- shared options -----------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="settings file (YAML); default: built-in defaults")
    p.add_argument("--sources", metavar="FILE", help="feeds file; default: the settings' `sources` or ./sources.yaml")
    p.add_argument("--data-dir", metavar="DIR", help="where the store lives; default: the settings' `data_dir`")
    p.add_argument("--verbose", "-v", action="store_true", help="log every decision")


def _load_config(args: argparse.Namespace, overrides: dict[str, Any] | None = None):
    from pipeline import config

    return config.load(args.config, sources_path=args.sources, data_dir=args.data_dir, overrides=overrides)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Beam's optional GCP module logs this on the root logger at import when the Google client
    # libraries are absent; newsmon never uses them, so it is noise, not a warning.
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda r: not r.getMessage().startswith("apitools not found"))
    if not verbose:
        # Beam and the HTTP stack are chatty at INFO; their warnings still show.
        for name in ("apache_beam", "httpx", "httpcore", "trafilatura", "htmldate"):
            logging.getLogger(name).setLevel(logging.ERROR)


# --- run / demo -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.daemon import Daemon

    cfg = _load_config(args)
    daemon = Daemon(cfg)
    try:
        if args.once:
            polled, batches, sent = daemon.run_once()
            disp: dict[str, int] = {}
            for b in batches:
                for k, v in b.dispositions.items():
                    disp[k] = disp.get(k, 0) + v
            print(
                f"polled {polled.feeds} feeds ({polled.errors} errors), {polled.new_items} new items; "
                f"dispositions {disp or '{}'}; alerts sent {sent.sent}, failed {sent.transient + sent.permanent}"
            )
            for feed_id, err in sorted(polled.errors_by_feed.items()):
                print(f"  feed {feed_id}: {err}")
            dead = sum(b.dead_letters for b in batches)
            if disp.get("retry") or dead:
                print(f"page downloads to retry later: {disp.get('retry', 0)}; items given up (dead letters): {dead}")
            if polled.disabled_skipped:
                n = polled.disabled_skipped
                print(
                    f"skipped {n} auto-disabled feed{'s' if n != 1 else ''} (retried every "
                    f"{cfg.settings.fetch.disabled_retry_hours:g} h; `newsmon status` lists them)"
                )
        else:
            daemon.run_forever()
    finally:
        daemon.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    if args.sources:
        raise ConfigError("the demo serves its own feeds from loopback; use `newsmon run --once --sources FILE` for yours")
    return run_demo(data_dir=args.data_dir, keep=args.keep, config_path=args.config)


def cmd_check_config(args: argparse.Namespace) -> int:
    from pipeline.stages.topics import load_topics

    cfg = _load_config(args)
    topics = load_topics(cfg.topics_dir)
    if args.dump:
        print(json.dumps(cfg.dump(), indent=2))
    print(f"ok: {len(cfg.feeds)} feeds from {cfg.sources_path}; {len(topics)} topics from {cfg.topics_dir} "
          f"({', '.join(t.id for t in topics)}); data in {cfg.data_dir}")
    return 0


# --- query ------------------------------------------------------------------------------------------


def format_rows(cols: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, max_width: int = 60) -> str:
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(cols, r, strict=True)), default=str, ensure_ascii=False) for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")

    def cell(v: Any) -> str:
        s = "" if v is None else str(v).replace("\n", " ")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(cols)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |", line]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |" for r in body]
    out += [line, f"({len(rows)} row{'s' if len(rows) != 1 else ''})"]
    return "\n".join(out)


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from pipeline.store import Store

    # With --data-dir alone, the store is all a query needs: skip reading settings and sources
    # (a third of the start-up of a one-line query).
    if args.data_dir and not args.config and not args.sources:
        data_dir = Path(args.data_dir)
    else:
        data_dir = _load_config(args).data_dir
    with Store.open(data_dir, read_only=True) as store:
        try:
            cols, rows = store.query(args.sql)
        except duckdb.Error as e:
            print(f"newsmon query: {e}", file=sys.stderr)
            return 2
    print(format_rows(cols, rows, args.format))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Per-feed health for operators; the same query is dashboards/feed_status.sql."""
    from datetime import UTC, datetime

    import duckdb

    from pipeline.store import Store

    cfg = _load_config(args)
    if args.dead_letters:
        return _status_dead_letters(cfg, args)
    sql = (Path(__file__).parent / "store" / "feed_status.sql").read_text(encoding="utf-8")
    with Store.open(cfg.data_dir, read_only=True) as store:
        cols, rows = store.query(sql)
        dead = store.dead_letter_count()
        try:
            waiting, next_retry = store.retry_counts(datetime.now(UTC))
        except duckdb.Error:  # a store the daemon has not migrated to 003 yet
            waiting, next_retry = 0, None
        _, disp = store.query("SELECT disposition, count(*) FROM items GROUP BY ALL ORDER BY 2 DESC")
        _, alerts = store.query(
            "SELECT status, count(*) FROM (SELECT alert_id, channel, arg_max(status, attempted_at) AS status "
            "FROM alert_deliveries GROUP BY ALL) GROUP BY ALL ORDER BY 1"
        )
    if args.format != "table":
        print(format_rows(cols, rows, args.format))
        return 0
    print(format_rows(cols, rows, "table", max_width=40))
    health: dict[str, int] = {}
    for r in rows:
        health[r[1]] = health.get(r[1], 0) + 1
    print("feeds: " + ", ".join(f"{k} {v}" for k, v in sorted(health.items())))
    print("items: " + (", ".join(f"{k} {v}" for k, v in disp) or "none yet"))
    print("alert deliveries (latest per alert and channel): " + (", ".join(f"{k} {v}" for k, v in alerts) or "none yet"))
    if waiting:
        print(f"downloads waiting for a retry: {waiting} (next at {next_retry:%Y-%m-%d %H:%M} UTC)")
    print(f"dead letters: {dead}" + (" (list them: newsmon status --dead-letters)" if dead else ""))
    _print_store_health(cfg)
    return 1 if args.fail_on_error and any(r[1] in ("failing", "silent", "auto-disabled") for r in rows) else 0


def _print_store_health(cfg: Any) -> None:
    """The store's fragmentation: what maintenance keeps down (README "Storage")."""
    from pipeline.store import Store
    from pipeline.store.maintenance import store_health

    with Store.open(cfg.data_dir, read_only=True) as store:
        h = store_health(store)
    print(
        f"store: {h.files} data files ({h.file_bytes / 1e6:.1f} MB), {h.delete_files} delete files, "
        f"{h.files_awaiting_cleanup} files awaiting cleanup, {h.snapshots} snapshots, "
        f"{h.inlined_rows} inlined rows, catalog {h.catalog_bytes / 1e6:.1f} MB (newsmon maintain compacts)"
    )


def cmd_maintain(args: argparse.Namespace) -> int:
    """Run the store upkeep the daemon schedules (pipeline/store/maintenance.py) once, now."""
    from datetime import UTC, datetime, timedelta

    from pipeline.store import Store
    from pipeline.store.maintenance import MaintenanceSettings, maintain

    cfg = _load_config(args)
    settings = MaintenanceSettings.from_config(cfg.settings.maintenance)
    if args.retention_days is not None:
        settings = dataclasses.replace(settings, snapshot_retention=timedelta(days=args.retention_days))
    if args.grace_minutes is not None:
        settings = dataclasses.replace(settings, file_grace=timedelta(minutes=args.grace_minutes))
    with Store.open(cfg.data_dir) as store:
        report = maintain(store, settings, datetime.now(UTC), progress=(lambda m: print(m, file=sys.stderr)) if args.verbose else None)
    for line in report.lines():
        print(line)
    return 1 if any(step[3].startswith("failed") for step in report.steps) else 0


def _status_dead_letters(cfg: Any, args: argparse.Namespace) -> int:
    """Items given up for good, newest first: stage, reason, attempts, feed, URL, last error."""
    import duckdb

    from pipeline.store import Store

    with Store.open(cfg.data_dir, read_only=True) as store:
        try:
            cols, rows = store.dead_letters(args.limit)
            total = store.dead_letter_count()
        except duckdb.Error as e:
            raise NewsmonError(f"cannot list dead letters ({e}); start the daemon once to migrate the store") from None
    print(format_rows(cols, rows, args.format, max_width=60))
    if args.format == "table" and total > len(rows):
        print(f"showing the latest {len(rows)} of {total} dead letters (--limit N for more)")
    return 0


# --- batch commands over JSON lines ---------------------------------------------------------------


def read_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line; ConfigError naming file and line otherwise."""
    try:
        fh = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as e:
        raise ConfigError(f"cannot read input: {e.strerror}", path=path) from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"not valid JSON ({e.msg} at column {e.colno}); one JSON object per line", path=path, line=n) from None
            if not isinstance(rec, dict):
                raise ConfigError("each line must be a JSON object", path=path, line=n)
            yield n, rec


def _docs(path: str):
    from pipeline.models import DedupDoc, parse_datetime

    seen: dict[str, int] = {}
    for n, rec in read_jsonl(path):
        doc_id, text = rec.get("id"), rec.get("text")
        if not isinstance(doc_id, str | int) or doc_id == "":
            raise ConfigError("missing 'id' (a string)", path=path, line=n)
        if not isinstance(text, str):
            raise ConfigError("missing 'text' (a string)", path=path, line=n)
        doc_id = str(doc_id)
        if doc_id in seen:
            raise ConfigError(f"duplicate id '{doc_id}' (first on line {seen[doc_id]}); ids must be unique", path=path, line=n)
        seen[doc_id] = n
        try:
            published = parse_datetime(rec.get("published"))
        except ValueError:
            raise ConfigError("'published' must be ISO 8601, e.g. 2025-08-01T12:00:00Z", path=path, line=n) from None
        if published is not None and published.tzinfo is None:
            from datetime import UTC

            published = published.replace(tzinfo=UTC)
        yield DedupDoc(doc_id, text, str(rec.get("title") or ""), str(rec.get("url") or ""), published, str(rec.get("source") or ""))


def _write_jsonl(path: str, records: Sequence[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")


def cmd_dedup(args: argparse.Namespace) -> int:
    from pipeline.stages.dedup import DedupSettings, fold_stories

    docs = list(_docs(args.inp))
    window = args.window_days
    if window is None and (args.config or args.sources):
        window = _load_config(args).settings.pipeline.dedup_window_days
    settings = DedupSettings(window_days=window) if window else DedupSettings()
    out = fold_stories(docs, settings)
    _write_jsonl(args.out, [{"id": a.doc_id, "story_id": a.story_id, "link": a.link} for a in out])
    stories = len({a.story_id for a in out})
    print(f"{len(docs)} documents -> {stories} stories; written to {args.out}", file=sys.stderr)
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from pipeline.models import to_dict
    from pipeline.stages.topics import load_topics, match_article, should_alert

    cfg = _load_config(args)
    topics = load_topics(args.topics or cfg.topics_dir)
    by_id = {t.id: t for t in topics}
    out = []
    for doc in _docs(args.inp):
        for m in match_article(doc.doc_id, doc.title, doc.text, topics):
            if args.all_levels or should_alert(m, by_id[m.topic]):
                out.append({"id": m.doc_id, "topic": m.topic, "score": round(m.score, 4), "level": m.level,
                            "evidence": [to_dict(e) for e in m.evidence]})
    _write_jsonl(args.out, out)
    print(f"{len(out)} matches; written to {args.out}", file=sys.stderr)
    return 0


# --- topics ------------------------------------------------------------------------------------------


def _topic(args: argparse.Namespace, name: str):
    from pipeline.stages.topics import load_topics

    cfg = _load_config(args)
    topics = {t.id: t for t in load_topics(args.topics or cfg.topics_dir)}
    if name not in topics:
        raise ConfigError(f"no topic '{name}'; known topics: {', '.join(sorted(topics))}", path=str(args.topics or cfg.topics_dir))
    return cfg, topics[name]


def cmd_topics_test(args: argparse.Namespace) -> int:
    from pipeline.stages.topics import explain

    _, topic = _topic(args, args.topic)
    try:
        text = sys.stdin.read() if args.text == "-" else Path(args.text).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the text: {e.strerror}", path=args.text) from None
    title = args.title if args.title is not None else text.splitlines()[0] if text.strip() else ""
    body = text if args.title is not None else "\n".join(text.splitlines()[1:])
    print(explain(title, body, topic))
    return 0


def cmd_topics_check(args: argparse.Namespace) -> int:
    from pipeline.stages.topics import check_examples, load_topics

    cfg = _load_config(args)
    failures = 0
    for topic in load_topics(args.topics or cfg.topics_dir):
        problems = check_examples(topic)
        n = len(topic.must_match) + len(topic.must_not_match)
        print(f"{topic.id}: {n - len(problems)}/{n} examples pass")
        for p in problems:
            print(f"  FAIL {p}")
        failures += len(problems)
    return 1 if failures else 0


def _parse_since(value: str):
    from datetime import UTC, datetime, timedelta

    m = re.fullmatch(r"(\d+)([dh])", value.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return datetime.now(UTC) - (timedelta(days=n) if unit == "d" else timedelta(hours=n))
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--since {value!r}: use e.g. 30d, 12h or an ISO date like 2025-08-01") from None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def cmd_topics_backtest(args: argparse.Namespace) -> int:
    """Run one topic over stored history; print matches per day and the alerts it would send."""
    from pipeline.stages.topics import match_article, should_alert
    from pipeline.store import Store

    cfg, topic = _topic(args, args.topic)
    since = _parse_since(args.since)
    per_day: dict[str, list[int]] = {}
    alert_stories: set[str] = set()
    with Store.open(cfg.data_dir, read_only=True) as store:
        total = int(store.scalar("SELECT count(*) FROM articles WHERE coalesce(published, stored_at) >= ?", [since]) or 0)
        _, rows = store.query(
            "SELECT article_id, story_id, title, text, CAST(coalesce(published, stored_at) AS DATE) "
            "FROM articles WHERE coalesce(published, stored_at) >= ? ORDER BY 5, article_id",
            [since],
        )
    for n, (aid, story_id, title, text, day) in enumerate(rows, 1):
        counts = per_day.setdefault(str(day), [0, 0, 0])
        counts[0] += 1
        for m in match_article(aid, title or "", text or "", [topic]):
            counts[1] += 1
            if should_alert(m, topic) and story_id not in alert_stories:
                alert_stories.add(story_id)
                counts[2] += 1
        if n % 200 == 0 or n == total:
            print(f"\r  matched {n}/{total} articles", end="", file=sys.stderr, flush=True)
    if total:
        print(file=sys.stderr)
    print(format_rows(["day", "articles", "matches", "alerts"], [(d, *c) for d, c in sorted(per_day.items())], "table"))
    print(f"topic {topic.id} since {since:%Y-%m-%d %H:%M} UTC: {sum(c[1] for c in per_day.values())} matching articles, "
          f"{len(alert_stories)} alerts would have been sent (one per story); nothing was sent")
    return 0


# --- eval --------------------------------------------------------------------------------------------


def cmd_eval(args: argparse.Namespace) -> int:
    """Measure story folding or topic matching and check the pinned floors (quality/floors.json)."""
    import time

    from pipeline.evaluate import (
        FLOORS,
        check_floors,
        default_corpora,
        evaluate_dedup,
        evaluate_topics,
        format_report,
    )

    corpora = Path(args.corpora) if args.corpora else default_corpora()
    t0 = time.monotonic()
    if args.what == "dedup":
        results = evaluate_dedup(corpora, fast=args.fast)
    else:
        cfg = _load_config(args)
        results = evaluate_topics(corpora, Path(args.topics or cfg.topics_dir))
    print(format_report(results))
    failures = check_floors(results, FLOORS)
    print("\n".join(["below floor:", *failures]) if failures else "all floors met")
    print(f"({time.monotonic() - t0:.1f} s; corpora: {corpora or 'not found, corpus sections skipped'})", file=sys.stderr)
    return 1 if failures else 0


# --- main -------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsmon", description="Self-hosted news monitoring: feeds -> stories -> topic alerts.")
    parser.add_argument("--version", action="version", version=f"newsmon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon (scheduler); --once for one cycle")
    _common(p)
    p.add_argument("--once", action="store_true", help="one poll, batch and alert cycle, then exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="offline end-to-end replay on bundled feeds served from loopback")
    p.add_argument("--config", "-c", metavar="FILE", help="settings file: its alert channels and limits are used too "
                   "(the feeds are always the demo's own, served from loopback)")
    p.add_argument("--sources", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", metavar="DIR", help="store of the demo (default: ./newsmon-demo, recreated)")
    p.add_argument("--keep", action="store_true", help="keep an existing demo store instead of recreating it")
    p.add_argument("--verbose", "-v", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("check-config", help="validate settings, sources and topics")
    _common(p)
    p.add_argument("--dump", action="store_true", help="print the resolved configuration (secrets masked)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("query", help="run SQL against the store (read-only, concurrent with the daemon)")
    _common(p)
    p.add_argument("sql")
    p.add_argument("--format", "-f", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("status", help="feed health: last success, errors and their class, silence")
    _common(p)
    p.add_argument("--format", "-f", choices=("table", "csv", "json"), default="table")
    p.add_argument("--fail-on-error", action="store_true", help="exit 1 when a feed is failing or silent (for monitoring)")
    p.add_argument("--dead-letters", action="store_true",
                   help="list the items given up for good (newest first) instead of feed health")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="--dead-letters: at most N rows (default 50)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("maintain", help="compact the store now: flush, merge, expire snapshots, clean up, vacuum")
    _common(p)
    p.add_argument("--retention-days", type=float, metavar="N",
                   help="keep snapshots (time travel) N days; default: the settings' maintenance.snapshot_retention_days")
    p.add_argument("--grace-minutes", type=float, metavar="M",
                   help="delete unneeded files after M minutes; default: maintenance.file_grace_minutes")
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("dedup", help="fold JSON-lines documents into stories")
    p.add_argument("--in", dest="inp", required=True, metavar="DOCS.jsonl", help="records with id, text[, title, url, published, source]; - for stdin")
    p.add_argument("--out", required=True, metavar="STORIES.jsonl", help="one record per input: id, story_id, link; - for stdout")
    p.add_argument("--window-days", type=float, help="time window for rewrites (default: the settings' pipeline.dedup_window_days)")
    _common(p)
    p.set_defaults(func=cmd_dedup)

    p = sub.add_parser("match", help="match JSON-lines documents against the topics")
    _common(p)
    p.add_argument("--in", dest="inp", required=True, metavar="DOCS.jsonl")
    p.add_argument("--out", required=True, metavar="MATCHES.jsonl", help="one record per (document, matched topic)")
    p.add_argument("--topics", metavar="DIR", help="topics directory (default: the settings' topics_dir)")
    p.add_argument("--all-levels", action="store_true", help="also emit mention-level matches")
    p.set_defaults(func=cmd_match)

    p = sub.add_parser("eval", help="measure story folding or topic matching against the pinned floors")
    _common(p)
    p.add_argument("what", choices=("dedup", "topics"))
    p.add_argument("--fast", action="store_true", help="dedup: seeds and reprints only (what CI gates quickly)")
    p.add_argument("--corpora", metavar="DIR", help="corpora folder (default: $NEWSMON_CORPORA or ../shared/corpora)")
    p.add_argument("--topics", metavar="DIR", help="topics directory (default: the settings' topics_dir)")
    p.set_defaults(func=cmd_eval)

    topics = sub.add_parser("topics", help="test and backtest topic definitions").add_subparsers(dest="topics_command", required=True, metavar="VERB")
    p = topics.add_parser("test", help="explain the decision of one topic for one text")
    _common(p)
    p.add_argument("topic")
    p.add_argument("--text", required=True, metavar="FILE", help="the article text (first line = title unless --title); - for stdin")
    p.add_argument("--title", help="the title, when the file holds only the body")
    p.add_argument("--topics", metavar="DIR", help="topics directory (default: the settings' topics_dir)")
    p.set_defaults(func=cmd_topics_test)
    p = topics.add_parser("check", help="run every topic's must-match / must-not-match examples")
    _common(p)
    p.add_argument("--topics", metavar="DIR")
    p.set_defaults(func=cmd_topics_check)
    p = topics.add_parser("backtest", help="run a topic over stored history; nothing is sent")
    _common(p)
    p.add_argument("topic")
    p.add_argument("--since", default="30d", help="30d, 12h or an ISO date (default 30d)")
    p.add_argument("--topics", metavar="DIR")
    p.set_defaults(func=cmd_topics_backtest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(getattr(args, "verbose", False))
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"newsmon: {e}", file=sys.stderr)
        return 2
    except NewsmonError as e:
        print(f"newsmon: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error. Point stdout at devnull so
        # the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
