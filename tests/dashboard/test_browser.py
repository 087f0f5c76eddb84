"""The dashboard in a real browser (headless Chromium): every page loads with no console error
and no request leaving loopback, the charts show what the store holds, a filter changes them,
tables download as CSV; a screenshot of each page is saved.

Charts are SVG drawn on the server (pipeline/dashboard/charts.py): each mark carries its series,
column, x and y as data attributes and a hover <title>; the tests read those back from the DOM
the browser built, so a chart that drew the wrong numbers (or none) fails them."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlsplit

import pytest

from pipeline.store import Store

pytestmark = pytest.mark.slow


class Watched:
    """A browser page that records console errors, page errors and every request it makes;
    a request for anything but loopback is aborted and recorded."""

    def __init__(self, browser) -> None:
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "file") or parts.hostname in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, url: str) -> None:
        resp = self.page.goto(url, wait_until="load")
        if not url.startswith("file:"):
            assert resp is not None and resp.status == 200, f"{url}: {resp and resp.status}"
        for div in self.page.locator("div.plot").all():
            assert div.locator("svg").count() == 1 and div.locator("svg").bounding_box()["height"] > 100

    def traces(self, chart: str) -> list[dict]:
        """The marks of a chart grouped by (series, column): x, y (a number where it is one) and
        the hover titles, as drawn."""
        return self.page.evaluate("""(id) => {
            const out = new Map();
            for (const e of document.querySelectorAll(`#${id} svg [data-series]`)) {
                const k = e.dataset.series + "\u0000" + e.dataset.column;
                if (!out.has(k)) out.set(k, {series: e.dataset.series, column: e.dataset.column, x: [], y: [], titles: []});
                const t = out.get(k), v = Number(e.dataset.y);
                t.x.push(e.dataset.x);
                t.y.push(e.dataset.y !== "" && !isNaN(v) ? v : e.dataset.y);
                const title = e.closest("g").querySelector("title");
                t.titles.push(title ? title.textContent : null);
            }
            return [...out.values()];
        }""", f"chart-{chart}")

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def watched(browser):
    w = Watched(browser)
    yield w
    w.close()


def _clean(w: Watched) -> None:
    assert not w.errors, w.errors
    assert not w.outside, f"requests left loopback: {w.outside}"


def _store_alerts(store_dir) -> dict[str, int]:
    with Store.open(store_dir, read_only=True) as s:
        _, rows = s.query("SELECT topic, count(*) FROM alert_outbox GROUP BY topic")
    return {t: n for t, n in rows}


def test_every_page_loads_clean_and_is_screenshotted(dashboard, watched, world_store, screenshots):
    with Store.open(world_store, read_only=True) as s:
        story_id = s.scalar("SELECT story_id FROM story_members GROUP BY story_id ORDER BY count(*) DESC, story_id LIMIT 1")
    paths = {"overview": "", "stories": "stories", "topics": "topics", "feeds": "feeds", "story": f"story/{story_id}"}
    for name, path in paths.items():
        watched.open(dashboard.url + path)
        watched.page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
        assert (screenshots / f"{name}.png").stat().st_size > 10_000
        _clean(watched)
    # each page is one request: charts and style sheet are in it, no script, nothing else to fetch
    assert len(watched.requests) == len(paths), watched.requests


def test_charts_show_the_stores_numbers_and_a_filter_changes_them(dashboard, watched, world_store):
    alerts = _store_alerts(world_store)  # from the outbox itself, not the rollups the page reads
    assert len(alerts) >= 2
    watched.open(dashboard.url)
    traces = watched.traces("alerts")
    shown = {t["series"]: sum(t["y"]) for t in traces}
    assert shown == alerts
    # every mark says its number on hover: series, day and value
    t = next(t for t in traces if any(t["y"]))
    i = next(i for i, y in enumerate(t["y"]) if y)
    assert t["titles"][i] == f"{t['series']} · {t['x'][i]}: {t['y'][i]}"
    # the per-topic lines show the same days and counts as the CSV behind them
    lines = {(t["series"], t["column"]): dict(zip(t["x"], t["y"], strict=True)) for t in watched.traces("stories_vs_copies")}
    href = watched.page.locator("#block-stories_vs_copies a.csv").get_attribute("href")
    rows = list(csv.DictReader(io.StringIO(watched.page.request.get(dashboard.url.rstrip("/") + href).text())))
    assert rows and all(lines[(r["topic"], "copies")][r["day"]] == int(r["copies"]) for r in rows)
    topic = sorted(alerts)[0]
    watched.page.select_option("select[name=topic]", topic)
    with watched.page.expect_navigation():
        watched.page.click("form.filters button")
    assert f"topic={topic}" in watched.page.url
    shown = {t["series"]: sum(t["y"]) for t in watched.traces("alerts")}
    assert shown == {topic: alerts[topic]}
    rows = watched.page.locator("table[data-name=overview_totals] tbody tr")
    assert rows.count() == 1 and rows.first.locator("td").first.inner_text() == topic
    # A range with nothing in it: no points at all.
    watched.page.fill("input[name=from]", "2001-01-01")
    watched.page.fill("input[name=to]", "2001-01-31")
    with watched.page.expect_navigation():
        watched.page.click("form.filters button")
    assert all(not any(t["y"]) for t in watched.traces("alerts"))
    _clean(watched)


def test_story_page_lists_every_member_and_alerts(dashboard, watched, world_store):
    with Store.open(world_store, read_only=True) as s:
        story_id, n = s.query("SELECT story_id, count(*) FROM story_members GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1")[1][0]
        alerted = s.scalar("SELECT story_id FROM alert_outbox ORDER BY created_at LIMIT 1")
        deliveries = s.scalar("SELECT count(*) FROM alert_deliveries d JOIN alert_outbox o USING (alert_id) "
                              "WHERE o.story_id = ?", [alerted])
    watched.open(f"{dashboard.url}story/{story_id}")
    assert watched.page.locator("table[data-name=members] tbody tr").count() == n
    assert sum(len(t["x"]) for t in watched.traces("timeline")) == n
    watched.open(f"{dashboard.url}story/{alerted}")
    assert watched.page.locator("table[data-name=alerts] tbody tr").count() == max(1, deliveries)
    evidence = watched.page.locator("table[data-name=matches] tbody tr td:last-child").first.inner_text()
    assert " in " in evidence  # clause [words] in zone
    _clean(watched)


def test_story_page_shows_thread_replies_updates_digests_and_silenced(world_store, watched, tmp_path):
    from collections import Counter

    from pipeline.dashboard.serve import Access, DashboardServer
    from tests.dashboard.conftest import add_notification_log, copy_store

    store_dir = copy_store(world_store, tmp_path / "s")
    story, want = add_notification_log(store_dir)
    with DashboardServer(store_dir, "127.0.0.1", 0, Access(), threads=2) as srv:
        watched.open(f"{srv.url}story/{story}")
        table = watched.page.locator("table[data-name=notifications]")
        cols = [h.inner_text() for h in table.locator("thead th").all()]
        kind, status = cols.index("kind"), cols.index("status")
        cells = [[td.inner_text() for td in tr.locator("td").all()] for tr in table.locator("tbody tr").all()]
        assert Counter(f"{r[kind]}/{r[status]}" for r in cells) == want
        assert "FROM alert_notifications" in watched.page.locator("#block-notifications details.sql pre").text_content()
        _clean(watched)


def test_stories_page_follows_to_a_story_and_tables_download_as_csv(dashboard, watched):
    watched.open(dashboard.url + "stories")
    top = watched.page.locator("table[data-name=top_stories] tbody tr")
    assert top.count() >= 1
    with watched.page.expect_download() as dl:
        watched.page.click("#block-top_stories a.csv")
    rows = list(csv.reader(io.StringIO(open(dl.value.path(), encoding="utf-8").read())))
    assert rows[0][:3] == ["story_id", "title", "first_outlet"]
    assert len(rows) - 1 == top.count()
    first = rows[1][0]
    with watched.page.expect_navigation():
        top.first.locator("a").first.click()
    assert watched.page.url.endswith(f"/story/{first}")
    # every chart shows its query
    watched.page.click("#block-timeline details.sql summary")
    assert "FROM story_members" in watched.page.locator("#block-timeline details.sql pre").inner_text()
    _clean(watched)


def test_static_report_opens_from_files_offline(world_store, watched, tmp_path, screenshots):
    from pipeline.dashboard.queries import Filters
    from pipeline.dashboard.report import write_report

    out = tmp_path / "site"
    written = write_report(world_store, out, Filters.default())
    assert (out / "index.html") in written and not (out / "assets").exists()  # pages are whole
    alerts = _store_alerts(world_store)
    watched.open((out / "index.html").as_uri())
    assert {t["series"]: sum(t["y"]) for t in watched.traces("alerts")} == alerts
    watched.page.screenshot(path=str(screenshots / "report-overview.png"), full_page=True)
    with watched.page.expect_navigation():
        watched.page.click("header nav a:has-text('Stories')")
    with watched.page.expect_navigation():
        watched.page.locator("table[data-name=top_stories] tbody tr a").first.click()
    assert "/story-" in watched.page.url
    assert not watched.errors, watched.errors
    assert all(urlsplit(u).scheme == "file" for u in watched.requests), watched.requests


def test_a_cold_page_is_one_request_and_draws_its_charts_without_script(dashboard, browser):
    """A first page in a new browser context fetches the page and nothing else: the charts are SVG
    in the HTML and the style sheet is inline, so there is no script to fetch or compile and no
    cache to warm. No request interception here (Playwright turns the browser's cache off when
    routing): the browser's own resource timing says what it fetched."""
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        for path in ("", "feeds"):
            page.goto(dashboard.url + path, wait_until="load")
            assert page.locator("div.plot svg").count() >= 2
            assert page.evaluate("() => document.scripts.length") == 0
            assert page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)") == []
            assert page.evaluate("() => getComputedStyle(document.querySelector('header')).display") == "flex"
    finally:
        ctx.close()
