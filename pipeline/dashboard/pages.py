"""The pages: each runs its queries (queries.py) on a reader and returns blocks to render.

A block is a chart (a charts.Figure, drawn on the server as SVG and inlined in the page) or a
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
from pipeline.dashboard.charts import PALETTE, Figure, Series
from pipeline.dashboard.queries import Filters, Query

PAGES = (("overview", "Overview"), ("stories", "Stories"), ("topics", "Topics"), ("feeds", "Feeds and pipeline"))

# the most topics a per-topic chart draws: one per colour of the palette
TOPIC_LINES = len(PALETTE)

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
    figure: Figure
    table: Table  # the numbers behind it, downloadable as CSV
    kind: str = "chart"

    @property
    def svg(self) -> str:
        from pipeline.dashboard.charts import svg

        return svg(self.figure)


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
    """Where a page or a CSV lives: on the server (query strings) or in a static site
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


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def _table(run: Run, query: Query, name: str | None = None) -> Table:
    cols, rows = run(query)
    return Table(name or query.name, query.title, query, cols, rows)


def _tables(run: Run, *queries: Query) -> list[Table]:
    """Several independent queries: side by side when the runner can (app.Readers.many)."""
    many = getattr(run, "many", None)
    results = many(list(queries)) if many else [run(x) for x in queries]
    return [Table(x.name, x.title, x, cols, rows) for x, (cols, rows) in zip(queries, results, strict=True)]


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


def _lines(t: Table, key: str, x: str, ys: list[tuple[str, str, str]], *,
           days: list[date] | None = None, fill: Any = 0) -> list[Series]:
    """Series: per value of `key`, one per (column, label suffix, dash) in ys. With `days`, every
    day of the range is a point: `fill` (0, or None for a ratio) where the store has no row, so
    a line never bridges days without articles."""
    out = []
    names = sorted({str(r[t.cols.index(key)]) for r in t.rows}) if key else [""]
    for j, (y, suffix, dash) in enumerate(ys):
        for name, (xs, vals) in sorted(_series(t, key, x, y).items()):
            if days is not None:
                have = dict(zip(xs, vals, strict=True))
                xs, vals = list(days), [have.get(d, fill) for d in days]
            label = " ".join(p for p in (name, suffix) if p)
            # One colour per series (a topic's stories and copies alike, told apart by the dash);
            # a single series takes one colour per column instead.
            color = PALETTE[(names.index(name) if key else j) % len(PALETTE)]
            out.append(Series(label, name, y, xs, vals, color, dash))
    return out


def _by_day(f: Filters, kind: str, series: list[Series], **kw: Any) -> Figure:
    return Figure(kind, series, labels=[d.isoformat() for d in _days(f)], **kw)


# --- pages -----------------------------------------------------------------------------------------


def overview(run: Run, f: Filters) -> Page:
    ids, per_topic, overall, totals = _tables(run, q.topic_ids(f), q.overview_topics(f), q.overview_all(f),
                                              q.overview_totals(f))
    page = Page("overview", "Overview", f, topics=[r[0] for r in ids.rows])
    days = _days(f)
    drawn, of = _top_topics(per_topic)
    page.blocks.append(Chart(
        "stories_vs_copies", "Unique stories against all copies per day, per topic" + of, per_topic.query,
        _by_day(f, "lines", _lines(drawn, "topic", "day", [("unique_stories", "stories", "solid"),
                                                                ("copies", "copies", "dot")], days=days),
                y_title="per day"), per_topic))
    page.blocks.append(Chart(
        "all_stories", "All articles: unique stories against all copies per day", overall.query,
        _by_day(f, "lines", _lines(overall, "", "day", [("unique_stories", "unique stories", "solid"),
                                                         ("copies", "all copies", "dot")], days=days),
                y_title="per day"), overall))
    page.blocks.append(Chart(
        "wire_share", "Wire share per day (articles crediting a wire agency)" + of, per_topic.query,
        _by_day(f, "lines", _lines(drawn, "topic", "day", [("wire_share", "", "solid")], days=days, fill=None),
                y_title="share", percent=True), per_topic))
    page.blocks.append(Chart(
        "alerts", "Alerts per day (new topic x story pairs)" + of, per_topic.query,
        _by_day(f, "bars", _lines(drawn, "topic", "day", [("alerts", "", "solid")], days=days),
                y_title="alerts", stack=True), per_topic))
    page.blocks.append(totals)
    return page


def _top_topics(t: Table) -> tuple[Table, str]:
    """The rows of the TOPIC_LINES topics with the most copies in the range, for the per-topic
    charts, and a title suffix that says so when some are left out. More lines than colours is
    not a chart one can read, and each drawn point costs the server ~0.15 ms (pygal): 20 topics
    are 2,500 points on the overview. The CSV under each chart, the table and the topic filter
    still have every topic."""
    ti, ci = t.cols.index("topic"), t.cols.index("copies")
    copies: dict[str, int] = defaultdict(int)
    for r in t.rows:
        copies[str(r[ti])] += r[ci] or 0
    if len(copies) <= TOPIC_LINES:
        return t, ""
    keep = set(sorted(copies, key=lambda k: (-copies[k], k))[:TOPIC_LINES])
    rows = [r for r in t.rows if str(r[ti]) in keep]
    return (Table(t.name, t.title, t.query, t.cols, rows),
            f" (the {TOPIC_LINES} of {len(copies)} topics with the most copies; the CSV has all)")


def stories(run: Run, f: Filters) -> Page:
    ids_t, top = _tables(run, q.topic_ids(f), q.top_stories(f))
    page = Page("stories", "Stories", f, topics=[r[0] for r in ids_t.rows])
    ids = [r[0] for r in top.rows]
    members = _table(run, q.spread(ids, f.ts_from))
    titles = {r[0]: (r[1] or r[0])[:60] for r in top.rows}
    order = {sid: i for i, sid in enumerate(ids)}
    # The first story at the top: its category is the highest index.
    by_link: dict[str, Series] = {}
    for sid, outlet, link, score, seen_at, _url in members.rows:
        k = link or "?"
        s = by_link.setdefault(k, Series(k, k, "story", [], [], text=[]))
        s.x.append(seen_at)
        s.y.append(len(ids) - 1 - order[sid])
        s.text.append(f"{outlet} ({link}, {score if score is not None else '-'})")  # type: ignore[union-attr]
    series = [s for _, s in sorted(by_link.items())]
    for i, s in enumerate(series):
        s.color = PALETTE[i % len(PALETTE)]
    cats = [f"{i + 1}. {titles[s]}" for i, s in enumerate(ids)][::-1]
    page.blocks.append(top)
    page.blocks.append(Chart(
        "spread", "Spread: which outlets carried each story, when, and as what link", members.query,
        Figure("points", series, categories=cats, height=max(320, 28 * len(ids) + 80)), members))
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
    members, matches, alerts = _tables(run, q.story_members(story_id, since), q.story_matches(story_id, since),
                                       q.story_alerts(story_id, since))
    si, ri = alerts.cols.index("status"), alerts.cols.index("receipt")
    digests = sorted({str(r[ri]) for r in alerts.rows if r[si] == "folded" and r[ri]})
    notes = _table(run, q.story_notifications(story_id, since, digests))
    page.facts.append(("appearances", len(members.rows)))
    page.facts.append(("outlets", len({r[1] for r in members.rows})))
    # Outlets in the order they first carried it, the first at the top.
    outlets = list(dict.fromkeys(str(r[1]) for r in members.rows))
    at = {o: len(outlets) - 1 - i for i, o in enumerate(outlets)}
    by_link: dict[str, Series] = {}
    for r in members.rows:
        k = r[3] or "?"
        s = by_link.setdefault(k, Series(k, k, "outlet", [], [], text=[]))
        s.x.append(r[0])
        s.y.append(at[str(r[1])])
        s.text.append(f"{k}, score {r[4] if r[4] is not None else '-'}")  # type: ignore[union-attr]
    series = [s for _, s in sorted(by_link.items())]
    for i, s in enumerate(series):
        s.color = PALETTE[i % len(PALETTE)]
    page.blocks.append(Chart(
        "timeline", "Spread timeline: outlet by time, coloured by link type", members.query,
        Figure("points", series, categories=outlets[::-1], height=max(320, min(18 * len(outlets) + 90, 2000))),
        members))
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
    ids: list[str] | None = None
    if not f.topic:  # the first topic; with one named, the list for the filter is read beside its queries
        ids = _topics(run, f)
        if not ids:
            page = Page("topics", "Topics", f, topics=[])
            page.note = "No topic has matches in this range."
            return page
        f = Filters(f.start, f.end, ids[0], f.limit)
    tables = _tables(run, *([] if ids is not None else [q.topic_ids(f)]), q.topic_trend(f), q.topic_levels(f),
                     q.topic_outlets(f), q.topic_backtest(f))
    if ids is None:
        ids = [r[0] for r in tables.pop(0).rows]
    trend, levels, outlets, back = tables
    page = Page("topics", f"Topic: {f.topic}", f, topics=ids)
    days = _days(f)
    page.blocks.append(Chart(
        "trend", "Trend: matching articles and distinct stories per day", trend.query,
        _by_day(f, "lines", _lines(trend, "", "day", [("articles", "articles", "dot"), ("stories", "stories", "solid"),
                                                      ("outlets", "outlets", "dash")], days=days),
                y_title="per day"), trend))
    page.blocks.append(Chart(
        "matches_per_day", "Matches per day by level", levels.query,
        _by_day(f, "bars", _lines(levels, "level", "day", [("matches", "", "solid")], days=days),
                y_title="matches", stack=True), levels))
    names = [str(r[0]) for r in outlets.rows]
    page.blocks.append(Chart(
        "outlets", "Top outlets", outlets.query,
        Figure("hbars", [Series("matches", "matches", outlets.cols[1], names[::-1], [r[1] for r in outlets.rows][::-1])],
               labels=names[::-1], height=max(320, 22 * len(names) + 80)), outlets))
    page.blocks.append(Chart(
        "backtest", "Backtest: what the current definition would have alerted (backfill, never sent) against alerts sent",
        back.query,
        _by_day(f, "bars", _lines(back, "", "day", [("alerts_sent", "alerts sent", "solid"),
                                                    ("would_alert", "would alert", "solid")], days=days),
                y_title="stories"), back))
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
        _by_day(f, "bars", _lines(disp, "disposition", "day", [("items", "", "solid")], days=_days(f)),
                y_title="items", stack=True), disp))
    page.blocks.append(dead)
    page.blocks.append(Chart(
        "batch_durations", "Batch durations", b.query,
        Figure("points", [Series("seconds", "seconds", "duration_seconds", [r[0] for r in b.rows],
                                 [r[6] for r in b.rows], text=[f"{r[3]} items, {r[4]} stored" for r in b.rows])],
               y_title="seconds"), b))
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
