"""Operator verbs for alerts: `newsmon silence add|list|expire` and `newsmon alerts test|replay|list`.

    newsmon silence add --topic sanctions --story S --source bbc.co.uk --until 2026-12-24 --comment "..."
    newsmon silence list [--all]
    newsmon silence expire SILENCE_ID
    newsmon alerts list [--limit N] [--kind first|reply|update|digest|health|test|replay] [--route R]
    newsmon alerts test --route R        a test message on each channel of route R (default: default)
    newsmon alerts replay ALERT_ID [--route R]   send a logged alert again, marked as a replay

Silence changes go straight into the store, or, while the daemon holds it, into a queue file the
daemon applies at its next alert run (pipeline/alert/silences.py). `alerts list` only reads.
`alerts test` and `alerts replay` call the channels directly with the configured secrets and
record what they sent in the notification log; while the daemon holds the store, through a queue
file it records at its next alert run (pipeline/alert/nflog.py, like silence changes).
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, NewsmonError


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("silence", help="mute alerts by topic, story, source or route for a while")
    ssub = p.add_subparsers(dest="silence_cmd", required=True)
    a = ssub.add_parser("add", help="add a silence (at least one matcher)")
    common(a)
    a.add_argument("--topic")
    a.add_argument("--story", help="a story id (alert_outbox.story_id)")
    a.add_argument("--source", help="an outlet (sitename) or feed id carrying the story")
    a.add_argument("--route", help="only on this route")
    a.add_argument("--until", required=True, help="end: 2026-12-24, 2026-12-24T18:00 (UTC) or a span: 2h, 3d")
    a.add_argument("--from", dest="start", help="start (default: now)")
    a.add_argument("--comment", required=True, help="why, for whoever finds it later")
    a.add_argument("--author", help="who (default: user@host)")
    a.set_defaults(func=cmd_silence_add)
    ls = ssub.add_parser("list", help="silences in force and queued (--all: expired ones too)")
    common(ls)
    ls.add_argument("--all", action="store_true")
    ls.set_defaults(func=cmd_silence_list)
    ex = ssub.add_parser("expire", help="end a silence now")
    common(ex)
    ex.add_argument("silence_id")
    ex.set_defaults(func=cmd_silence_expire)

    p = sub.add_parser("alerts", help="the notification log; test and replay alerts")
    asub = p.add_subparsers(dest="alerts_cmd", required=True)
    li = asub.add_parser("list", help="what was sent, when, where, with how many outlets")
    common(li)
    li.add_argument("--limit", type=int, default=50)
    li.add_argument("--kind")
    li.add_argument("--route")
    li.add_argument("--format", choices=("table", "csv", "json"), default="table")
    li.set_defaults(func=cmd_alerts_list)
    t = asub.add_parser("test", help="send a test message on every channel of a route")
    common(t)
    t.add_argument("--route", default="default")
    t.set_defaults(func=cmd_alerts_test)
    r = asub.add_parser("replay", help="send one logged alert again (marked as a replay)")
    common(r)
    r.add_argument("alert_id")
    r.add_argument("--route", help="this route's channels (default: the routes the alert was sent on)")
    r.set_defaults(func=cmd_alerts_replay)


# -- helpers --------------------------------------------------------------------------------------


def parse_when(value: str, now: datetime) -> datetime:
    """`2026-12-24` (midnight UTC), `2026-12-24T18:00[+01:00]`, or a span from now: 90m, 2h, 3d."""
    v = value.strip()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if v and v[-1] in units and v[:-1].replace(".", "", 1).isdigit():
        return now + timedelta(**{units[v[-1]]: float(v[:-1])})
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        raise ConfigError(f"cannot read the time {value!r}; write 2026-12-24, 2026-12-24T18:00 or a span like 2h, 3d") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _cfg(args: argparse.Namespace, *, feeds: bool = False):
    from pipeline.cli import _load_config

    return _load_config(args, feeds_required=feeds)


def _routes(cfg: Any):
    from pipeline.daemon import build_notifiers, build_routes

    return build_routes(cfg, build_notifiers(cfg))


def _print_table(cols: list[str], rows: list[tuple[Any, ...]], fmt: str = "table") -> None:
    from pipeline.cli import format_rows

    print(format_rows(cols, rows, fmt))


# -- silences ------------------------------------------------------------------------------------


def cmd_silence_add(args: argparse.Namespace) -> int:
    from pipeline.alert.silences import Silence, add_silence, new_silence_id

    if not any((args.topic, args.story, args.source, args.route)):
        raise ConfigError("a silence needs at least one matcher: --topic, --story, --source or --route")
    cfg = _cfg(args)
    now = datetime.now(UTC)
    start = parse_when(args.start, now) if args.start else now
    end = parse_when(args.until, now)
    if end <= start:
        raise ConfigError(f"--until {args.until} is not after the start ({start:%Y-%m-%d %H:%M} UTC)")
    author = args.author or f"{getpass.getuser()}@{socket.gethostname()}"
    sid = new_silence_id(now, topic=args.topic, story=args.story, source=args.source, route=args.route)
    s = Silence(sid, args.topic, args.story, args.source, args.route, start, end, author, args.comment, now)
    how = add_silence(Path(cfg.data_dir), s)
    print(f"{sid}: {s.describe()} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC by {author}"
          + (" (queued: the daemon applies it at its next alert run)" if how == "queued" else ""))
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    from pipeline.alert.silences import Silence, load_silences, pending_changes
    from pipeline.store import Store

    cfg = _cfg(args)
    now = datetime.now(UTC)
    with Store.open(cfg.data_dir, read_only=True) as store:
        silences = load_silences(store)
    rows = []
    for s in silences:
        state = "active" if s.active(now) else ("expired" if (s.expired_at or s.ends_at) <= now else "pending")
        if state == "expired" and not args.all:
            continue
        rows.append((s.silence_id, state, s.describe(), f"{s.starts_at:%Y-%m-%d %H:%M}", f"{s.ends_at:%Y-%m-%d %H:%M}",
                     s.author, s.comment))
    for c in pending_changes(Path(cfg.data_dir)):
        if c.get("op") == "add":
            q = Silence(**{k: c.get(k) for k in Silence.__dataclass_fields__})
            rows.append((q.silence_id, "queued", q.describe(), f"{q.starts_at:%Y-%m-%d %H:%M}",
                         f"{q.ends_at:%Y-%m-%d %H:%M}", q.author, q.comment))
        else:
            rows.append((c["silence_id"], "expire queued", "", "", "", "", ""))
    if not rows:
        print("no silences" + ("" if args.all else " in force (--all shows expired ones)"))
        return 0
    _print_table(["silence_id", "state", "matchers", "starts (UTC)", "ends (UTC)", "author", "comment"], rows)
    return 0


def cmd_silence_expire(args: argparse.Namespace) -> int:
    from pipeline.alert.silences import expire_silence, load_silences, pending_changes
    from pipeline.store import Store

    cfg = _cfg(args)
    with Store.open(cfg.data_dir, read_only=True) as store:
        known = {s.silence_id for s in load_silences(store)}
    known |= {c.get("silence_id") for c in pending_changes(Path(cfg.data_dir)) if c.get("op") == "add"}
    if args.silence_id not in known:
        raise NewsmonError(f"no silence {args.silence_id!r}; `newsmon silence list --all` shows them")
    how = expire_silence(Path(cfg.data_dir), args.silence_id, datetime.now(UTC))
    print(f"{args.silence_id}: expired" + (" (queued for the running daemon)" if how == "queued" else ""))
    return 0


# -- alerts --------------------------------------------------------------------------------------


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from pipeline.store import Store

    cfg = _cfg(args)
    where, params = ["status <> 'sending'"], []
    if args.kind:
        where.append("kind = ?")
        params.append(args.kind)
    if args.route:
        where.append("route = ?")
        params.append(args.route)
    sql = (f"SELECT noted_at, route, channel, kind, status, alert_id, topic, story_id, seq, outlets, copies, receipt, "
           f"broadcast, left(detail, 60) AS detail FROM alert_notifications WHERE {' AND '.join(where)} "
           f"ORDER BY noted_at DESC LIMIT ?")
    with Store.open(cfg.data_dir, read_only=True) as store:
        cols, rows = store.query(sql, [*params, args.limit])
    if not rows:
        print("the notification log is empty")
        return 0
    _print_table(cols, [tuple(r) for r in rows], args.format)
    return 0


def _record(cfg: Any, rows: list[dict[str, Any]]) -> str:
    """Log what an operator verb sent: in the store, or queued for the daemon that holds it."""
    from pipeline.alert import nflog

    if nflog.record_or_queue(cfg.data_dir, rows) == "queued":
        return " (queued for the notification log: the daemon records it at its next alert run)"
    return ""


def _send_all(route: Any, kind: str, alert_id: str | None, text: str, subject: str, now: datetime) -> list[dict[str, Any]]:
    from pipeline.alert import nflog
    from pipeline.alert.lifecycle import send_message
    from pipeline.errors import DeliveryError

    rows = []
    failed = []
    for key, notifier in route.keys.items():
        m = nflog.row(notification_id=nflog.nid(key, kind, alert_id or "", now.isoformat()), route=route.name,
                      channel=key, kind=kind, alert_id=alert_id, seq=0, attempt=1, noted_at=now) | {
            "content": {"text": text, "subject": subject}}
        try:
            receipt = send_message(route, notifier, m, now)
        except DeliveryError as e:
            print(f"{key}: FAILED: {e}")
            failed.append(key)
            rows.append(nflog.row(**{**m, "status": "permanent_error", "detail": str(e)[:300]}))
            continue
        print(f"{key}: sent" + (f" ({receipt})" if receipt else ""))
        rows.append(nflog.row(**{**m, "status": "sent", "receipt": receipt, "detail": m["content"]}))
    if failed:
        raise NewsmonError(f"{len(failed)} of {len(route.keys)} channels failed: {', '.join(failed)}")
    return rows


def _route(cfg: Any, name: str):
    routes = {r.name: r for r in _routes(cfg)}
    if name not in routes:
        raise ConfigError(f"no route {name!r}; routes: {', '.join(routes)} (alerts.routes in the settings)")
    return routes[name]


def cmd_alerts_test(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    route = _route(cfg, args.route)
    now = datetime.now(UTC)
    text = (f"newsmon test alert for route {route.name} at {now:%Y-%m-%d %H:%M:%S} UTC from {socket.gethostname()}: "
            "if you read this, the channel works")
    rows = _send_all(route, "test", None, text, f"[newsmon] test alert ({route.name})", now)
    print("test sent" + _record(cfg, rows))
    return 0


def cmd_alerts_replay(args: argparse.Namespace) -> int:
    from pipeline.alert.dispatch import to_message
    from pipeline.alert.message import render_text
    from pipeline.store import DueAlert, Store

    cfg = _cfg(args)
    with Store.open(cfg.data_dir, read_only=True) as store:
        _, rows = store.query("SELECT alert_id, topic, story_id, payload FROM alert_outbox WHERE alert_id = ?",
                              [args.alert_id])
        if not rows:
            raise NewsmonError(f"no alert {args.alert_id!r}; `newsmon alerts list` shows the log")
        _, sent_on = store.query("SELECT DISTINCT route FROM alert_notifications WHERE alert_id = ? AND kind = 'first'",
                                 [args.alert_id])
    aid, topic, story, payload = rows[0]
    msg = to_message(DueAlert(aid, "replay", 1, topic, story, json.loads(payload)))
    names = [args.route] if args.route else ([r[0] for r in sent_on] or ["default"])
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for name in names:
        route = _route(cfg, name)
        out += _send_all(route, "replay", aid, "(replay) " + render_text(msg), f"[newsmon] (replay) {topic}: {msg.title}"[:150], now)
    print(f"replayed {aid} on {', '.join(names)}" + _record(cfg, out))
    return 0
