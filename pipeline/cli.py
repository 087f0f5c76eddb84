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
    newsmon topics test|check|train|label|backtest   explain, verify, train, teach and backtest topics
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


def _load_config(args: argparse.Namespace, overrides: dict[str, Any] | None = None, *, feeds_required: bool = True):
    from pipeline import config

    return config.load(args.config, sources_path=args.sources, data_dir=args.data_dir, overrides=overrides,
                       feeds_required=feeds_required)


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
            # Beam logs the traceback of a failing stage itself, then raises it to the daemon,
            # which logs it once per failure streak (daemon._guard): a broken pipeline added ~10 KB
            # of Beam traceback to stderr per batch. Shown with -v.
            handler.addFilter(lambda r: not (r.name.startswith("apache_beam") and r.exc_info and r.levelno >= logging.ERROR))
    # Start, stop and where the daemon listens are logged whatever the level: an operator must
    # see from the journal that it started, with what, without -v (pipeline/daemon.py `lifecycle`).
    logging.getLogger("newsmon.lifecycle").setLevel(logging.INFO)
    # Beam logs a line per type hint it cannot resolve ("Converting string literal type hint to
    # Any"), a third of a -v log: the stages' annotations are strings (PEP 563), which Beam reads
    # as Any by design. Not a decision of ours; hidden even with -v. Beam's own INFO (runner
    # internals) is not either: its warnings still show.
    logging.getLogger("apache_beam.typehints").setLevel(logging.ERROR)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    if not verbose:
        # Beam and the HTTP stack are chatty at INFO; their warnings still show.
        for name in ("apache_beam", "httpx", "httpcore", "trafilatura", "htmldate"):
            logging.getLogger(name).setLevel(logging.ERROR)


# --- run / demo -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.daemon import Daemon, one_line_error

    overrides: dict[str, Any] = {}
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.metrics_host is not None:
        overrides["metrics_host"] = args.metrics_host
    cfg = _load_config(args, overrides)
    daemon = Daemon(cfg)
    try:
        if args.once:
            try:
                polled, batches, sent = daemon.run_once()
            except Exception as e:
                # A pipeline that fails (a broken topic file, say) is one line here; -v re-raises
                # for the traceback. NewsmonError already is one line.
                if args.verbose or isinstance(e, NewsmonError):
                    raise
                raise NewsmonError(f"the batch failed: {one_line_error(e)} (-v for the traceback)") from None
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
            if polled.feeds and polled.errors == polled.feeds:
                # Nothing came in: a monitor or a cron job must see this run as failed.
                print(f"newsmon: every feed polled failed ({polled.errors} of {polled.feeds}); see the errors above",
                      file=sys.stderr)
                return 1
        else:
            daemon.run_forever()
    finally:
        daemon.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    if args.sources:
        raise ConfigError("the demo serves its own feeds from loopback; use `newsmon run --once --sources FILE` for yours")
    rc = run_demo(data_dir=args.data_dir, keep=args.keep, config_path=args.config)
    if rc or not args.serve:
        return rc
    # End the demo on its dashboard (pipeline/dashboard/): loopback only, until Ctrl-C.
    from pipeline.dashboard.serve import Access, serve

    print("\nThe dashboard of the demo's store (Ctrl-C to stop):")
    return serve(Path(args.data_dir or "newsmon-demo").resolve(), "127.0.0.1", args.port, Access(), 4, sys.stdout)


def cmd_check_config(args: argparse.Namespace) -> int:
    from pipeline.config import BUNDLED, PROJECT_ROOT
    from pipeline.stages.topics import load_topics
    from pipeline.store.connection import data_dir_problem

    cfg = _load_config(args)
    topics = load_topics(cfg.topics_dir)
    problem = data_dir_problem(cfg.data_dir)
    if problem:
        raise ConfigError(f"data_dir: {problem}; the daemon must be able to write there (fix it or pass --data-dir)",
                          path=str(args.config) if args.config else None)
    if args.dump:
        print(json.dumps(cfg.dump(), indent=2))
    shipped = cfg.topics_dir.is_relative_to(BUNDLED) or cfg.topics_dir.is_relative_to(PROJECT_ROOT / "seeds")
    print(f"ok: {len(cfg.feeds)} feeds from {cfg.sources_path}; {len(topics)} topics from {cfg.topics_dir}"
          f"{' (the bundled seed topics)' if shipped else ''} ({', '.join(t.id for t in topics)}); data in {cfg.data_dir}")
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


def _refuse_non_reading(sql: str) -> None:
    """Only statements that read: SELECT (with SHOW, DESCRIBE, SUMMARIZE, FROM ...) and EXPLAIN.

    The store is attached read-only and the reader's connection has no file access (see
    store/connection.py); this says so before running anything, in the words of the statement."""
    import duckdb

    try:
        statements = duckdb.connect().extract_statements(sql)
    except duckdb.Error as e:
        raise ConfigError(f"cannot parse the SQL: {' '.join(str(e).split())}") from None
    for st in statements:
        kind = st.type.name
        if kind not in ("SELECT", "EXPLAIN"):
            raise ConfigError(
                f"newsmon query only reads: a {kind} statement is refused (no writes to the store or to files, "
                "no ATTACH, INSTALL or LOAD); use SELECT, e.g. SELECT * FROM items LIMIT 10"
            )


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from pipeline.store import Store

    _refuse_non_reading(args.sql)
    # With --data-dir alone, the store is all a query needs: skip reading settings and sources
    # (a third of the start-up of a one-line query).
    location = None  # with --data-dir alone: NEWSMON_STORE_CATALOG / _DATA_PATH, else the data directory
    if args.data_dir and not args.config and not args.sources:
        data_dir = Path(args.data_dir)
    else:
        cfg = _load_config(args, feeds_required=False)
        data_dir, location = cfg.data_dir, cfg.store_location
    with Store.open(data_dir, read_only=True, location=location) as store:
        try:
            cols, rows = store.query(args.sql)
        except duckdb.Error as e:
            print(f"newsmon query: {e}", file=sys.stderr)
            return 2
    print(format_rows(cols, rows, args.format))
    return 0


STATUS_WIDTH = 100  # what `newsmon status` fits in without --wide
_STATUS_COLUMNS = (  # (query column, header, width) of the narrow table
    ("feed_id", "feed", 24),
    ("health", "health", 13),
    ("last_success_at", "last ok", 11),
    ("error_streak", "errors", 6),
    ("last_error_kind", "last error", 12),
    ("items_per_day", "items/d", 7),
    ("last_new_item", "last new", 11),
)
_FEED_PROBLEMS = ("failing", "silent", "auto-disabled")


def _short_time(v: Any, fmt: str = "%m-%d %H:%M") -> str:
    from datetime import datetime

    return v.strftime(fmt) if isinstance(v, datetime) else "" if v is None else str(v)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _status_table(cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The feed table in at most STATUS_WIDTH columns: times to the minute, long values cut."""
    idx = {c: i for i, c in enumerate(cols)}

    def cell(v: Any, width: int) -> str:
        if isinstance(v, float):
            v = f"{v:g}"
        s = _short_time(v).replace("\n", " ")
        return s if len(s) <= width else s[: width - 1] + "…"

    lines = ["  ".join(h.ljust(w) for _, h, w in _STATUS_COLUMNS).rstrip()]
    for r in rows:
        lines.append("  ".join(cell(r[idx[c]], w).ljust(w) for c, _, w in _STATUS_COLUMNS).rstrip())
    return "\n".join(lines)


def _pipeline_health(cfg: Any, store: Any, now: Any) -> tuple[list[str], list[str], dict[str, Any]]:
    """(lines to print, problems for --fail-on-error, the same as a dict for -f json)."""
    from pipeline.health import read_health
    from pipeline.metrics import FAILING_AFTER
    from pipeline.store.lock import read_holder

    lines: list[str] = []
    problems: list[str] = []
    holder = read_holder(cfg.data_dir)
    if holder:
        lines.append(f"daemon: running (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')})")
    else:
        lines.append("daemon: not running (no writer holds this store)")
    last_ok = store.scalar("SELECT max(finished_at) FROM batches")
    health = read_health(cfg.data_dir)
    failures = int(health.get("batch_failures_in_row") or 0)
    line = "batches: last succeeded " + (
        f"{last_ok:%Y-%m-%d %H:%M} UTC ({_ago((now - last_ok).total_seconds())})" if last_ok else "never"
    )
    if failures:
        line += f"; {failures} failed in a row since"
        if failures >= FAILING_AFTER:
            problems.append(f"the last {failures} batches failed")
    lines.append(line)
    if failures and health.get("last_batch_error"):
        import textwrap

        lines += textwrap.wrap(f"last batch error: {health['last_batch_error']}", STATUS_WIDTH,
                               initial_indent="  ", subsequent_indent="    ", break_on_hyphens=False)
    # Stale: items ready for a batch have waited far longer than batches come, and no batch
    # finished meanwhile (a daemon that is down, stuck, or failing every batch).
    limit = max(600.0, 10 * cfg.settings.pipeline.batch_interval_seconds)
    oldest = store.scalar(
        "SELECT min(seen_at) FROM items WHERE disposition = 'pending' AND (retry_at IS NULL OR retry_at <= ?)", [now]
    )
    pending = int(store.scalar("SELECT count(*) FROM items WHERE disposition = 'pending'") or 0)
    line = f"spool: {pending} pending"
    if oldest is not None:
        waited = (now - oldest).total_seconds()
        line += f", oldest ready for {_ago(waited).removesuffix(' ago')}"
        if waited > limit and (last_ok is None or (now - last_ok).total_seconds() > limit):
            line += f" (stale: no batch for over {limit / 60:g} min)"
            problems.append("the spool is stale")
    lines.append(line)
    info = {
        "daemon_running": bool(holder),
        "daemon": holder,
        "last_batch_ok_at": last_ok.isoformat() if last_ok else None,
        "batch_failures_in_row": failures,
        "last_batch_error": health.get("last_batch_error"),
        "pending": pending,
        "oldest_ready_seen_at": oldest.isoformat() if oldest else None,
        "problems": problems,
    }
    return lines, problems, info


def cmd_status(args: argparse.Namespace) -> int:
    """Feed and pipeline health for operators; the feed query is pipeline/store/feed_status.sql.

    Exit 1 with --fail-on-error when a feed is failing, silent or auto-disabled, when the last
    batches failed, or when the spool is stale (items waiting, no batch for long)."""
    from datetime import UTC, datetime

    import duckdb

    from pipeline.store import Store

    cfg = _load_config(args, feeds_required=False)
    if args.dead_letters:
        return _status_dead_letters(cfg, args)
    sql = (Path(__file__).parent / "store" / "feed_status.sql").read_text(encoding="utf-8")
    now = datetime.now(UTC)
    with Store.open(cfg.data_dir, location=cfg.store_location, read_only=True) as store:
        cols, rows = store.query(sql)
        dead = store.dead_letter_count()
        try:
            waiting, next_retry = store.retry_counts(now)
        except duckdb.Error:  # a store the daemon has not migrated to 003 yet
            waiting, next_retry = 0, None
        _, disp = store.query("SELECT disposition, count(*) FROM items GROUP BY ALL ORDER BY 2 DESC")
        _, alerts = store.query(
            "SELECT status, count(*) FROM (SELECT alert_id, channel, arg_max(status, attempted_at) AS status "
            "FROM alert_deliveries GROUP BY ALL) GROUP BY ALL ORDER BY 1"
        )
        pipeline_lines, problems, info = _pipeline_health(cfg, store, now)
    failing = bool(problems) or any(r[1] in _FEED_PROBLEMS for r in rows)
    code = 1 if args.fail_on_error and failing else 0
    if args.format == "json":
        feeds = [dict(zip(cols, r, strict=True)) for r in rows]
        print(json.dumps({"pipeline": info, "feeds": feeds, "dead_letters": dead}, default=str, ensure_ascii=False))
        return code
    if args.format != "table":
        print(format_rows(cols, rows, args.format))
        return code
    print(format_rows(cols, rows, "table", max_width=40) if args.wide else _status_table(cols, rows))
    health: dict[str, int] = {}
    for r in rows:
        health[r[1]] = health.get(r[1], 0) + 1
    print("feeds: " + ", ".join(f"{k} {v}" for k, v in sorted(health.items())) + "  (times in UTC)")
    for line in pipeline_lines:
        print(line)
    print("items: " + (", ".join(f"{k} {v}" for k, v in disp) or "none yet"))
    print("alerts (latest per alert, channel): " + (", ".join(f"{k} {v}" for k, v in alerts) or "none yet"))
    if waiting:
        print(f"downloads waiting for a retry: {waiting} (next at {next_retry:%Y-%m-%d %H:%M} UTC)")
    print(f"dead letters: {dead}" + (" (list them: newsmon status --dead-letters)" if dead else ""))
    _print_store_health(cfg)
    if problems:
        print("problems: " + "; ".join(problems))
    return code


def _print_store_health(cfg: Any) -> None:
    """The store's fragmentation: what maintenance keeps down (README "Storage")."""
    from pipeline.store import Store
    from pipeline.store.maintenance import store_health

    with Store.open(cfg.data_dir, location=cfg.store_location, read_only=True) as store:
        h = store_health(store)
    # Two lines, so the status stays within 100 columns.
    print(f"store: {h.files} data files ({h.file_bytes / 1e6:.1f} MB), {h.snapshots} snapshots, "
          f"{h.inlined_rows} inlined rows, catalog {h.catalog_bytes / 1e6:.1f} MB")
    print(f"  {h.delete_files} delete files, {h.files_awaiting_cleanup} awaiting cleanup "
          "(newsmon maintain compacts)")


def cmd_maintain(args: argparse.Namespace) -> int:
    """Run the store upkeep the daemon schedules (pipeline/store/maintenance.py) once, now."""
    from datetime import UTC, datetime, timedelta

    from pipeline.store import Store
    from pipeline.store.maintenance import MaintenanceSettings, maintain

    cfg = _load_config(args)
    settings = MaintenanceSettings.from_config(cfg.settings.maintenance, cfg.settings.store.keep_pages_days)
    if args.retention_days is not None:
        settings = dataclasses.replace(settings, snapshot_retention=timedelta(days=args.retention_days))
    if args.grace_minutes is not None:
        settings = dataclasses.replace(settings, file_grace=timedelta(minutes=args.grace_minutes))
    with Store.open(cfg.data_dir, location=cfg.store_location) as store:
        report = maintain(store, settings, datetime.now(UTC), progress=(lambda m: print(m, file=sys.stderr)) if args.verbose else None)
    for line in report.lines():
        print(line)
    return 1 if any(step[3].startswith("failed") for step in report.steps) else 0


def _status_dead_letters(cfg: Any, args: argparse.Namespace) -> int:
    """Items given up for good, newest first: stage, reason, attempts, feed, URL, last error."""
    import duckdb

    from pipeline.store import Store

    with Store.open(cfg.data_dir, location=cfg.store_location, read_only=True) as store:
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


def _refuse_same_file(inp: str, out: str) -> None:
    """--out naming the --in file would overwrite the input with the result: refused."""
    if inp == "-" or out == "-":
        return
    same = Path(inp).resolve() == Path(out).resolve()
    if not same and Path(inp).exists() and Path(out).exists():
        same = os.path.samefile(inp, out)
    if same:
        raise ConfigError("--out is the --in file; write the result to another file", path=out)


def _write_jsonl(path: str, records: Sequence[dict[str, Any]]) -> None:
    """Write the records whole or not at all (a crash or a full disk leaves the old file)."""
    from pipeline.fileio import write_atomic

    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if path == "-":
        sys.stdout.write(text)
        return
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, text)
    except OSError as e:
        raise NewsmonError(f"cannot write {path}: {e.strerror}") from None


def cmd_dedup(args: argparse.Namespace) -> int:
    from pipeline.stages.dedup import DedupSettings, fold_stories

    _refuse_same_file(args.inp, args.out)
    docs = list(_docs(args.inp))
    window = args.window_days
    if window is None and (args.config or args.sources):
        window = _load_config(args, feeds_required=False).settings.pipeline.dedup_window_days
    settings = DedupSettings(window_days=window) if window else DedupSettings()
    out = fold_stories(docs, settings)
    _write_jsonl(args.out, [{"id": a.doc_id, "story_id": a.story_id, "link": a.link} for a in out])
    stories = len({a.story_id for a in out})
    print(f"{len(docs)} documents -> {stories} stories; written to {args.out}", file=sys.stderr)
    return 0


def cmd_match(args: argparse.Namespace) -> int:
    from pipeline.models import to_dict
    from pipeline.stages.topics import load_topics, match_article, should_alert

    cfg = _load_config(args, feeds_required=False)
    topics = load_topics(args.topics or cfg.topics_dir)
    by_id = {t.id: t for t in topics}
    _refuse_same_file(args.inp, args.out)
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

    cfg = _load_config(args, feeds_required=False)
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

    cfg = _load_config(args, feeds_required=False)
    failures = 0
    for topic in load_topics(args.topics or cfg.topics_dir):
        problems = check_examples(topic)
        n = len(topic.must_match) + len(topic.must_not_match)
        if topic.model is not None:
            model = (f"model: alert at P(about) >= {topic.model.threshold:.2f} (short texts "
                     f"{topic.model.short_threshold:.2f}), trained on {sum(topic.model.trained.get('texts', {}).values())} texts")
        else:
            model = "model: none, rules alone score (train one with `newsmon topics train`)"
        if topic.model_stale:
            model += "; STALE: the rules or vocabulary changed since training, retrain with `newsmon topics train`"
        print(f"{topic.id}: {n - len(problems)}/{n} examples pass; {model}")
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
    """Run one topic, as its files say now, over stored history and compare with what it alerted.

    Prints per day the articles, matches and (topic, story) alerts the topic would give now, the
    stories that would newly alert and those that would no longer, and the projected alerts per
    day. Nothing is sent. With --apply, the matches found are recorded in the store marked as
    backfill (never alerted), so a topic change never floods a channel with history.
    """
    from datetime import UTC, datetime

    from pipeline.models import to_dict
    from pipeline.stages.topics import match_article, should_alert
    from pipeline.store import Store

    cfg, topic = _topic(args, args.topic)
    since = _parse_since(args.since)
    per_day: dict[str, list[int]] = {}
    new_alerts: dict[str, str] = {}  # story -> day of its first alert under the new definition
    found: list[dict] = []
    with Store.open(cfg.data_dir, location=cfg.store_location, read_only=True) as store:
        total = int(store.scalar("SELECT count(*) FROM articles WHERE coalesce(published, stored_at) >= ?", [since]) or 0)
        _, rows = store.query(
            "SELECT article_id, story_id, title, text, CAST(coalesce(published, stored_at) AS DATE) "
            "FROM articles WHERE coalesce(published, stored_at) >= ? ORDER BY 5, article_id",
            [since],
        )
        _, old = store.query(
            "SELECT o.story_id, min(CAST(o.created_at AS DATE)) FROM alert_outbox o "
            "WHERE o.topic = ? AND o.story_id IN (SELECT story_id FROM articles "
            "WHERE coalesce(published, stored_at) >= ?) GROUP BY 1",
            [topic.id, since],
        )
    old_alerts = {story: str(day) for story, day in old}
    for n, (aid, story_id, title, text, day) in enumerate(rows, 1):
        counts = per_day.setdefault(str(day), [0, 0, 0])
        counts[0] += 1
        for m in match_article(aid, title or "", text or "", [topic]):
            counts[1] += 1
            alert = should_alert(m, topic)
            found.append({"article_id": aid, "story_id": story_id, "topic": topic.id, "score": m.score,
                          "level": m.level, "evidence": [to_dict(e) for e in m.evidence]})
            if alert and story_id not in new_alerts:
                new_alerts[story_id] = str(day)
                counts[2] += 1
        if n % 200 == 0 or n == total:
            print(f"\r  matched {n}/{total} articles", end="", file=sys.stderr, flush=True)
    if total:
        print(file=sys.stderr)
    print(format_rows(["day", "articles", "matches", "alerts"], [(d, *c) for d, c in sorted(per_day.items())], "table"))
    appear = sorted(set(new_alerts) - set(old_alerts))
    gone = sorted(set(old_alerts) - set(new_alerts))
    days = max(1, len(per_day))
    if topic.model_stale:
        print(f"note: {topic.id}.model.json was trained on other rules or vocabulary; retrain with `newsmon topics train`")
    print(f"topic {topic.id} since {since:%Y-%m-%d %H:%M} UTC over {days} day(s): {len(new_alerts)} story alerts now "
          f"against {len(old_alerts)} sent; {len(appear)} would appear, {len(gone)} would disappear; "
          f"projected {len(new_alerts) / days:.1f} alerts per day (was {len(old_alerts) / days:.1f})")
    for label, stories in (("would appear", appear), ("would disappear", gone)):
        for story in stories[: args.show]:
            print(f"  {label}: story {story} ({new_alerts.get(story) or old_alerts.get(story)})")
        if len(stories) > args.show:
            print(f"  {label}: ... and {len(stories) - args.show} more (--show N)")
    if args.apply:
        from pipeline.store.labels import record_backfill

        with Store.open(cfg.data_dir, location=cfg.store_location) as store:
            written = record_backfill(store, found, datetime.now(UTC))
        print(f"applied: {written} matches recorded as backfill (not alerted); {len(found) - written} were stored already")
    else:
        print("nothing was sent or stored (--apply records the matches as backfill, never alerted)")
    return 0


def cmd_topics_label(args: argparse.Namespace) -> int:
    """Record an analyst's judgement of a stored article for a topic (a training example)."""
    import getpass
    from datetime import UTC, datetime

    from pipeline.store.labels import add_topic_label

    cfg, topic = _topic(args, args.topic)
    by = args.by or os.environ.get("NEWSMON_USER") or getpass.getuser()
    how = add_topic_label(cfg.data_dir, args.article_id, topic.id, args.label, by, datetime.now(UTC), args.note or "")
    where = ("stored" if how == "stored" else
             "queued while the daemon holds the store; it moves into the store after the next batch")
    print(f"labelled {args.article_id} '{args.label}' for {topic.id} (by {by}), {where}; "
          f"`newsmon topics train` makes it a training example")
    return 0


def cmd_topics_train(args: argparse.Namespace) -> int:
    """Fit each topic's relevance model and save it beside the topic file (<id>.model.json)."""
    from dataclasses import replace

    from pipeline.fileio import write_atomic
    from pipeline.stages.topics import load_topics
    from pipeline.topics.labelled import examples_of, for_topic, load_labelled
    from pipeline.topics.review import review
    from pipeline.topics.train import train

    cfg = _load_config(args, feeds_required=False)
    topics = load_topics(args.topics or cfg.topics_dir)
    if args.topic:
        topics = [t for t in topics if t.id in set(args.topic)]
        if not topics:
            raise ConfigError(f"no topic named {', '.join(args.topic)}", path=str(args.topics or cfg.topics_dir))
    corpora = [d for path in args.corpus for d in load_labelled(path)]
    stored = [] if args.no_store else _stored_labels(cfg)
    refused = 0
    for topic in topics:
        items = examples_of(topic) + for_topic(corpora, topic.id) + [it for tid, it in stored if tid == topic.id]
        model = train(topic, items)
        out = Path(topic.source).with_name(f"{topic.id}.model.json")
        counts = model.trained["texts"]
        top = sorted(zip(model.features, model.weights, strict=True), key=lambda fw: -abs(fw[1]))[:5]
        print(f"{topic.id}: trained on {len(items)} texts ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
              f"alert at P >= {model.threshold:.2f} (short texts {model.short_threshold:.2f})")
        print("  strongest: " + ", ".join(f"{f} {w:+.2f}" for f, w in top))
        # Before writing: what the new model changes on the labelled texts, and whether it still
        # decides the topic's own examples and the seed articles as they are labelled.
        checked = review(topic, replace(topic, model=model, model_stale=False), items)
        print("  " + checked.summary())
        for line in checked.change_lines():
            print("    " + line)
        if checked.failures and not args.force:
            refused += 1
            print(f"  NOT WRITTEN: the new model fails {len(checked.failures)} of what the topic must decide as "
                  f"labelled; {out} is unchanged (fix the examples or labels, or pass --force):")
            for failure in checked.failures:
                print(f"    {failure}")
            continue
        if args.dry_run:
            print(f"  not written (--dry-run): {out} is unchanged")
            continue
        for failure in checked.failures:
            print(f"  written anyway (--force): {failure}")
        write_atomic(out, json.dumps(model.to_json(), indent=1, sort_keys=False) + "\n")
        print(f"  wrote {out}")
    return 1 if refused else 0


def _stored_labels(cfg):
    """(topic, Labelled) for every analyst label in the store; none when there is no store yet."""
    from pipeline.store import Store
    from pipeline.store.connection import catalog_exists
    from pipeline.topics.train import Labelled

    if not catalog_exists(Path(cfg.data_dir), cfg.store_location):
        return []
    with Store.open(cfg.data_dir, location=cfg.store_location, read_only=True) as store:
        _, rows = store.query(
            "SELECT l.topic, l.article_id, a.title, a.text, l.label, coalesce(a.sitename, a.feed_id, ''), "
            "CAST(coalesce(a.published, a.stored_at) AS VARCHAR) "
            "FROM topic_labels l JOIN articles a USING (article_id) "
            "QUALIFY row_number() OVER (PARTITION BY l.topic, l.article_id ORDER BY l.labelled_at DESC) = 1"
        )
        from pipeline.store.labels import pending_labels

        pending = pending_labels(Path(cfg.data_dir))
        if pending:
            known = {aid: (title, text, src, when) for _, aid, title, text, _, src, when in rows}
            wanted = [p["article_id"] for p in pending if p["article_id"] not in known]
            if wanted:
                _, extra = store.query(
                    "SELECT article_id, title, text, coalesce(sitename, feed_id, ''), "
                    "CAST(coalesce(published, stored_at) AS VARCHAR) FROM articles WHERE list_contains(?, article_id)",
                    [wanted],
                )
                known.update({aid: (title, text, src, when) for aid, title, text, src, when in extra})
            latest = {(t, aid): label for t, aid, _, _, label, _, _ in rows}
            latest.update({(p["topic"], p["article_id"]): p["label"] for p in pending if p["article_id"] in known})
            rows = [(t, aid, *known[aid][:2], label, *known[aid][2:]) for (t, aid), label in latest.items()]
    return [(t, Labelled(aid, title or "", text or "", label, "article", src, (when or "")[:10]))
            for t, aid, title, text, label, src, when in rows]


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
        results = evaluate_dedup(corpora, fast=args.fast, log=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    else:
        cfg = _load_config(args, feeds_required=False)
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
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve /metrics and /healthz here (overrides metrics_port)")
    p.add_argument("--metrics-host", metavar="ADDR", help="bind the metrics server to ADDR (overrides metrics_host), "
                   "e.g. 0.0.0.0 in a container")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="offline end-to-end replay on bundled feeds served from loopback")
    p.add_argument("--config", "-c", metavar="FILE", help="settings file: its alert channels and limits are used too "
                   "(the feeds are always the demo's own, served from loopback)")
    p.add_argument("--sources", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", metavar="DIR", help="store of the demo (default: ./newsmon-demo, recreated)")
    p.add_argument("--keep", action="store_true", help="keep an existing demo store instead of recreating it")
    p.add_argument("--serve", action="store_true", help="then serve the dashboard on the demo's store (127.0.0.1)")
    p.add_argument("--port", type=int, default=8050, help="--serve: the dashboard's port (default 8050; 0: any free)")
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
    p.add_argument("--fail-on-error", action="store_true",
                   help="exit 1 when a feed is failing or silent, batches fail, or the spool is stale (for monitoring)")
    p.add_argument("--wide", action="store_true", help="every column of the feed table, full timestamps")
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
    p = topics.add_parser("train", help="fit each topic's relevance model from its examples and labelled texts")
    _common(p)
    p.add_argument("--topics", metavar="DIR")
    p.add_argument("--topic", action="append", default=[], metavar="ID", help="only this topic (repeatable)")
    p.add_argument("--corpus", action="append", default=[], metavar="PATH",
                   help="labelled texts: a topics-dev style folder, a .jsonl file or the seeds folder (repeatable)")
    p.add_argument("--no-store", action="store_true", help="leave out the analysts' labels kept in the store")
    p.add_argument("--force", action="store_true",
                   help="write the model even if it fails the topic's own examples or a seed article")
    p.add_argument("--dry-run", action="store_true", help="fit and review the model, write nothing")
    p.set_defaults(func=cmd_topics_train)
    p = topics.add_parser("label", help="record a judgement of a stored article for a topic (about|mentions|no)")
    _common(p)
    p.add_argument("article_id")
    p.add_argument("topic")
    p.add_argument("label", choices=("about", "mentions", "no"))
    p.add_argument("--by", help="who judged it (default: $NEWSMON_USER or the login name)")
    p.add_argument("--note", help="a one-line reason")
    p.add_argument("--topics", metavar="DIR")
    p.set_defaults(func=cmd_topics_label)
    p = topics.add_parser("backtest", help="run a topic over stored history; compare with what it alerted; nothing is sent")
    _common(p)
    p.add_argument("topic")
    p.add_argument("--since", default="30d", help="30d, 12h or an ISO date (default 30d)")
    p.add_argument("--topics", metavar="DIR")
    p.add_argument("--apply", action="store_true", help="record the matches found as backfill (never alerted)")
    p.add_argument("--show", type=int, default=10, metavar="N", help="list at most N stories that appear or disappear")
    p.set_defaults(func=cmd_topics_backtest)

    # Commands that live in their own modules: each has register(sub, common), where common(p)
    # adds the shared --config/--sources/--data-dir/--verbose options.
    import importlib
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, _common)
    return parser


# One line per command module (keep them sorted); a module's import cost is paid by every command.
COMMAND_MODULES: tuple[str, ...] = (
    "pipeline.alert.cli",
    "pipeline.backfill.cli",
    "pipeline.dashboard.cli",
)


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
    except OSError as e:
        # The file system said no (read-only, missing, full, a port in use): one line, exit 1.
        if getattr(args, "verbose", False):
            raise
        what = f" ({e.filename})" if e.filename else ""
        print(f"newsmon: {e.strerror or e}{what}", file=sys.stderr)
        return 1
    except Exception as e:
        # The store refused (duckdb.Error), or a bug: one line for the operator, the traceback with -v.
        if getattr(args, "verbose", False) or not type(e).__module__.startswith(("duckdb", "_duckdb")):
            raise
        print(f"newsmon: the store refused: {' '.join(str(e).split())[:500]} (-v for the traceback)", file=sys.stderr)
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
