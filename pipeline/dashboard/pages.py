"""The pages: each runs its queries (queries.py) on a reader and returns blocks to render.

A block is a chart (a plotly.js figure, drawn by the browser from the JSON in the page) or a
table; each carries the query it came from, shown under it, and a table downloads as CSV. The
same functions serve the live dashboard (app.py) and the static report (report.py); only the
links differ (`Links`).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from pipeline.dashboard import queries as q
from pipeline.dashboard.queries import Filters, Query

PAGES = (("overview", "Overview"), ("stories", "Stories"), ("topics", "Topics"), ("feeds", "Feeds and pipeline"))

# plotly's default qualitative colours, so charts look as plotly users expect
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

Run = Callable[[Query], tuple[list[str], list[tuple[Any, ...]]]]


class NotFound(LookupError):
    pass


@dataclass
class Table:
    name: str
    title: str
    query: Query
    cols: list[str]
    rows: list[tuple[Any, ...]]
    kind: str = "table"

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.cols)
        for r in self.rows:
            w.writerow(["" if v is None else (v.isoformat() if isinstance(v, datetime | date) else v) for v in r])
        return buf.getvalue()


@dataclass
class Chart:
    name: str
    title: str
    query: Query
    figure: dict[str, Any]
    table: Table  # the numbers behind it, downloadable as CSV
    kind: str = "chart"

    @property
    def figure_json(self) -> str:
        return json.dumps(self.figure, default=_json_default, separators=(",", ":")).replace("</", "<\\/")


@dataclass
class Page:
    name: str            # the nav entry it belongs to
    title: str
    filters: Filters | None
    blocks: list[Table | Chart] = field(default_factory=list)
    facts: list[tuple[str, Any]] = field(default_factory=list)  # a header of label: value
    topics: list[str] = field(default_factory=list)  # for the topic filter
    note: str = ""

    def block(self, name: str) -> Table:
        for b in self.blocks:
            t = b.table if isinstance(b, Chart) else b
            if name in (b.name, t.name):
                return t
        raise NotFound(f"no table {name!r} on this page")


class Links:
    """Where a page, a CSV or an asset lives: on the server (query strings) or in a static site
    (one file per page)."""

    def __init__(self, static: bool = False) -> None:
        self.static = static

    def page(self, name: str, f: Filters | None = None, **extra: str) -> str:
        if self.static:
            if name == "story":
                return f"story-{_safe(extra['story_id'])}.html"
            if name == "topics" and (extra.get("topic") or (f and f.topic)):
                return f"topics-{_safe(extra.get('topic') or f.topic)}.html"  # type: ignore[union-attr]
            return "index.html" if name == "overview" else f"{name}.html"
        if name == "story":
            return f"/story/{quote(extra['story_id'], safe='')}"
        args = f.args(**extra) if f else extra
        path = "/" if name == "overview" else f"/{name}"
        return path + (f"?{urlencode(args)}" if args else "")

    def csv(self, page: Page, table: str, story_id: str = "") -> str:
        if self.static:
            stem = f"story-{_safe(story_id)}" if story_id else self.page(page.name, page.filters).removesuffix(".html")
            return f"csv/{stem}-{table}.csv"
        base = f"/csv/story/{quote(story_id, safe='')}/{table}.csv" if story_id else f"/csv/{page.name}/{table}.csv"
        args = page.filters.args() if page.filters else {}
        return base + (f"?{urlencode(args)}" if args else "")

    def asset(self, name: str) -> str:
        if self.static:
            return f"assets/{name}"
        from pipeline.dashboard.app import asset_version  # the app imports this module

        return f"/assets/{name}?v={asset_version(name)}"


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if hasattr(v, "__float__"):
        return float(v)
    return str(v)


def _table(run: Run, query: Query, name: str | None = None) -> Table:
    cols, rows = run(query)
    return Table(name or query.name, query.title, query, cols, rows)


def _day_axis(f: Filters) -> dict[str, Any]:
    lo = datetime.combine(f.start, datetime.min.time()) - timedelta(hours=12)
    hi = datetime.combine(f.end, datetime.min.time()) + timedelta(hours=12)
    return {"type": "date", "range": [lo.isoformat(), hi.isoformat()]}


def _tables(run: Run, *queries: Query) -> list[Table]:
    """Several independent queries: side by side when the runner can (app.Readers.many)."""
    many = getattr(run, "many", None)
    results = many(list(queries)) if many else [run(x) for x in queries]
    return [Table(x.name, x.title, x, cols, rows) for x, (cols, rows) in zip(queries, results, strict=True)]


def _layout(title: str = "", **extra: Any) -> dict[str, Any]:
    lay = {"margin": {"l": 50, "r": 20, "t": 30, "b": 60}, "height": 320,
           "legend": {"orientation": "h", "y": -0.22},
           "hovermode": "x unified"}
    if title:
        lay["yaxis"] = {"title": {"text": title}}
    lay.update(extra)
    return lay


def _series(t: Table, key: str, x: str, y: str) -> dict[str, tuple[list[Any], list[Any]]]:
    """Rows grouped by `key` into (xs, ys); key '' puts every row in one series."""
    ki = t.cols.index(key) if key else None
    xi, yi = t.cols.index(x), t.cols.index(y)
    out: dict[str, tuple[list[Any], list[Any]]] = defaultdict(lambda: ([], []))
    for r in t.rows:
        s = out[str(r[ki]) if ki is not None else ""]
        s[0].append(r[xi])
        s[1].append(r[yi])
    return dict(out)


def _days(f: Filters) -> list[date]:
    return [f.start + timedelta(days=i) for i in range((f.end - f.start).days + 1)]


def _lines(t: Table, key: str, x: str, ys: list[tuple[str, str, str]], *, bar: bool = False,
           days: list[date] | None = None, fill: Any = 0) -> list[dict[str, Any]]:
    """Traces: per series of `key`, one per (column, label suffix, dash) in ys. With `days`, every
    day of the range is a point: `fill` (0, or None for a ratio) where the store has no row, so
    a line never bridges days without articles."""
    traces = []
    names = sorted({str(r[t.cols.index(key)]) for r in t.rows}) if key else [""]
    for j, (y, suffix, dash) in enumerate(ys):
        for name, (xs, vals) in sorted(_series(t, key, x, y).items()):
            if days is not None:
                have = dict(zip(xs, vals, strict=True))
                xs, vals = list(days), [have.get(d, fill) for d in days]
            label = " ".join(p for p in (name, suffix) if p)
            tr: dict[str, Any] = {"x": xs, "y": vals, "name": label, "meta": {"series": name, "column": y}}
            # One colour per series (a topic's stories and copies alike, told apart by the dash);
            # a single series takes one colour per column instead.
            color = PALETTE[(names.index(name) if key else j) % len(PALETTE)]
            if bar:
                tr.update(type="bar", marker={"color": color})
            else:
                tr.update(type="scatter", mode="lines+markers", line={"dash": dash, "color": color},
                          marker={"color": color, "size": 5})
            traces.append(tr)
    return traces


# --- pages -----------------------------------------------------------------------------------------


def overview(run: Run, f: Filters) -> Page:
    ids, per_topic, overall, totals = _tables(run, q.topic_ids(f), q.overview_topics(f), q.overview_all(f),
                                              q.overview_totals(f))
    page = Page("overview", "Overview", f, topics=[r[0] for r in ids.rows])
    days, axis = _days(f), _day_axis(f)
    page.blocks.append(Chart(
        "stories_vs_copies", "Unique stories against all copies per day, per topic", per_topic.query,
        {"data": _lines(per_topic, "topic", "day", [("unique_stories", "stories", "solid"), ("copies", "copies", "dot")],
                         days=days),
         "layout": _layout("per day", xaxis=axis)}, per_topic))
    page.blocks.append(Chart(
        "all_stories", "All articles: unique stories against all copies per day", overall.query,
        {"data": _lines(overall, "", "day", [("unique_stories", "unique stories", "solid"), ("copies", "all copies", "dot")],
                         days=days),
         "layout": _layout("per day", xaxis=axis)}, overall))
    page.blocks.append(Chart(
        "wire_share", "Wire share per day (articles crediting a wire agency)", per_topic.query,
        {"data": _lines(per_topic, "topic", "day", [("wire_share", "", "solid")], days=days, fill=None),
         "layout": _layout("share", xaxis=axis, yaxis={"tickformat": ".0%", "rangemode": "tozero"})}, per_topic))
    page.blocks.append(Chart(
        "alerts", "Alerts per day (new topic x story pairs)", per_topic.query,
        {"data": _lines(per_topic, "topic", "day", [("alerts", "", "solid")], bar=True, days=days),
         "layout": _layout("alerts", barmode="stack", xaxis=axis)}, per_topic))
    page.blocks.append(totals)
    return page


def stories(run: Run, f: Filters) -> Page:
    ids_t, top = _tables(run, q.topic_ids(f), q.top_stories(f))
    page = Page("stories", "Stories", f, topics=[r[0] for r in ids_t.rows])
    ids = [r[0] for r in top.rows]
    members = _table(run, q.spread(ids, f.ts_from))
    titles = {r[0]: (r[1] or r[0])[:60] for r in top.rows}
    order = {sid: i for i, sid in enumerate(ids)}
    traces = []
    by_link: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"x": [], "y": [], "text": []})
    for sid, outlet, link, score, seen_at, _url in members.rows:
        t = by_link[link or "?"]
        t["x"].append(seen_at)
        t["y"].append(f"{order[sid] + 1}. {titles[sid]}")
        t["text"].append(f"{outlet} ({link}, {score if score is not None else '-'})")
    for link, t in sorted(by_link.items()):
        traces.append({"type": "scatter", "mode": "markers", "name": link, "x": t["x"], "y": t["y"],
                       "text": t["text"], "hovertemplate": "%{text}<br>%{x}<extra></extra>", "marker": {"size": 9}})
    y_order = [f"{i + 1}. {titles[s]}" for i, s in enumerate(ids)]
    page.blocks.append(top)
    page.blocks.append(Chart(
        "spread", "Spread: which outlets carried each story, when, and as what link", members.query,
        {"data": traces, "layout": _layout(height=max(320, 28 * len(ids) + 80), hovermode="closest",
                                            yaxis={"categoryorder": "array", "categoryarray": y_order[::-1],
                                                   "automargin": True})}, members))
    return page


def story(run: Run, story_id: str, f: Filters | None = None) -> Page:
    head = _table(run, q.story_header(story_id))
    if not head.rows:
        raise NotFound(f"no story {story_id!r} in the store")
    h = dict(zip(head.cols, head.rows[0], strict=True))
    since = h["first_seen_at"] - timedelta(days=1)  # members and matches come after the first article
    page = Page("stories", f"Story: {h['title'] or story_id}", None)
    page.facts = [("story", story_id), ("first outlet", h["first_outlet"]), ("first seen", h["first_seen_at"]),
                  ("wire agency", h["wire"] or "none credited")]
    members, matches, alerts, notes = _tables(run, q.story_members(story_id, since), q.story_matches(story_id, since),
                                              q.story_alerts(story_id, since), q.story_notifications(story_id, since))
    page.facts.append(("appearances", len(members.rows)))
    page.facts.append(("outlets", len({r[1] for r in members.rows})))
    by_link: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"x": [], "y": []})
    for r in members.rows:
        by_link[r[3] or "?"]["x"].append(r[0])
        by_link[r[3] or "?"]["y"].append(r[1])
    page.blocks.append(Chart(
        "timeline", "Spread timeline: outlet by time, coloured by link type", members.query,
        {"data": [{"type": "scatter", "mode": "markers", "name": k, "marker": {"size": 10}, **v}
                  for k, v in sorted(by_link.items())],
         "layout": _layout(hovermode="closest", yaxis={"automargin": True})}, members))
    page.blocks.append(members)
    # The evidence JSON spelled out: clause (or exemplar), the words matched, the zone.
    ei = matches.cols.index("evidence")
    rows = []
    for r in matches.rows:
        ev = json.loads(r[ei]) if r[ei] else []
        text = "; ".join(f"{_clause(e)} [{', '.join(e.get('spans') or [])}] in {e.get('zone', '?')}"
                         for e in ev if isinstance(e, dict))
        rows.append((*r[:ei], text))
    matches.rows = rows
    page.blocks.append(matches)
    page.blocks.append(alerts)
    page.blocks.append(notes)
    return page


def _clause(e: dict[str, Any]) -> str:
    """A rule's name (its detail is "name: query"; the query is in the topic file and the CSV's
    evidence JSON of `newsmon query`), or the exemplar's id."""
    d = str(e.get("detail", ""))
    name, sep, _ = d.partition(": ")
    return f"{e.get('kind', 'rule')} {name if sep else d[:80]}"


def topics(run: Run, f: Filters) -> Page:
    ids = _topics(run, f)
    if not f.topic and ids:
        f = Filters(f.start, f.end, ids[0], f.limit)
    page = Page("topics", f"Topic: {f.topic}" if f.topic else "Topics", f, topics=ids)
    if not f.topic:
        page.note = "No topic has matches in this range."
        return page
    trend, levels, outlets, back = _tables(run, q.topic_trend(f), q.topic_levels(f), q.topic_outlets(f),
                                           q.topic_backtest(f))
    days, axis = _days(f), _day_axis(f)
    page.blocks.append(Chart(
        "trend", "Trend: matching articles and distinct stories per day", trend.query,
        {"data": _lines(trend, "", "day", [("articles", "articles", "dot"), ("stories", "stories", "solid"),
                                           ("outlets", "outlets", "dash")], days=days),
         "layout": _layout("per day", xaxis=axis)}, trend))
    page.blocks.append(Chart(
        "matches_per_day", "Matches per day by level", levels.query,
        {"data": _lines(levels, "level", "day", [("matches", "", "solid")], bar=True, days=days),
         "layout": _layout("matches", barmode="stack", xaxis=axis)}, levels))
    page.blocks.append(Chart(
        "outlets", "Top outlets", outlets.query,
        {"data": [{"type": "bar", "orientation": "h", "name": "matches",
                   "x": [r[1] for r in outlets.rows][::-1], "y": [str(r[0]) for r in outlets.rows][::-1]}],
         "layout": _layout(hovermode="closest", yaxis={"automargin": True})}, outlets))
    page.blocks.append(Chart(
        "backtest", "Backtest: what the current definition would have alerted (backfill, never sent) against alerts sent",
        back.query,
        {"data": _lines(back, "", "day", [("alerts_sent", "alerts sent", "solid"), ("would_alert", "would alert", "solid")],
                        bar=True, days=days),
         "layout": _layout("stories", barmode="group", xaxis=axis)}, back))
    if not back.rows or not any(r[2] or r[3] for r in back.rows):
        page.note = (f"No backfill recorded for {f.topic} in this range: after changing the topic, run "
                     f"`newsmon rematch --topic {f.topic} --since 30d` to fill the backtest view (nothing is sent).")
    return page


def feeds(run: Run, f: Filters, now: datetime | None = None) -> Page:
    page = Page("feeds", "Feeds and pipeline health", f)
    status, disp, dead, b = _tables(run, q.feed_health(now or datetime.now(UTC)), q.feed_dispositions(f),
                                    q.dead_letters(f), q.batches(f))
    counts: dict[str, int] = defaultdict(int)
    for r in status.rows:
        counts[str(r[1])] += 1
    page.facts = [(k, v) for k, v in sorted(counts.items())]
    page.blocks.append(status)
    page.blocks.append(Chart(
        "dispositions", "Items by disposition per day", disp.query,
        {"data": _lines(disp, "disposition", "day", [("items", "", "solid")], bar=True, days=_days(f)),
         "layout": _layout("items", barmode="stack", xaxis=_day_axis(f))}, disp))
    page.blocks.append(dead)
    page.blocks.append(Chart(
        "batch_durations", "Batch durations", b.query,
        {"data": [{"type": "scatter", "mode": "markers", "name": "seconds", "x": [r[0] for r in b.rows],
                   "y": [r[6] for r in b.rows], "text": [f"{r[3]} items, {r[4]} stored" for r in b.rows]}],
         "layout": _layout("seconds", hovermode="closest")}, b))
    return page


def _topics(run: Run, f: Filters) -> list[str]:
    _, rows = run(q.topic_ids(f))
    return [r[0] for r in rows]


def render_page(name: str, run: Run, f: Filters, story_id: str = "") -> Page:
    if name == "story":
        return story(run, story_id, f)
    fn = {"overview": overview, "stories": stories, "topics": topics, "feeds": feeds}.get(name)
    if fn is None:
        raise NotFound(f"no page {name!r}")
    return fn(run, f)


def cell(v: Any) -> str:
    """A value as a table shows it."""
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if v == v else ""
    return str(v)
