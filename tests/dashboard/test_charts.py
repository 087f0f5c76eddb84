"""The server-drawn charts (pipeline/dashboard/charts.py): every kind of chart the pages draw
gives each mark its series, column, x and y, and a hover title; no script, no reference to
anything outside the SVG."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from lxml import etree

from pipeline.dashboard.charts import Figure, Series, svg

SVG = "{http://www.w3.org/2000/svg}"


def marks(fig: Figure) -> tuple[etree._Element, list[dict[str, str]]]:
    root = etree.fromstring(svg(fig).encode())
    out = []
    for e in root.iter():
        if "data-series" in e.attrib:
            title = e.getparent().find(f"{SVG}title")
            out.append({**{k[5:]: v for k, v in e.attrib.items() if k.startswith("data-")},
                        "title": title.text if title is not None else None, "tag": etree.QName(e).localname})
    return root, out


def test_every_kind_of_chart_puts_its_numbers_on_its_marks():
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(3)]
    labels = [d.isoformat() for d in days]
    a = Series("a stories", "a", "unique_stories", days, [1, 0, 7])
    b = Series("b stories", "b", "unique_stories", days, [2, 5, None], dash="dot")  # None: no point
    for fig, tag in ((Figure("lines", [a, b], labels=labels), "circle"),
                     (Figure("bars", [a, b], labels=labels, stack=True), "rect"),
                     (Figure("bars", [a, b], labels=labels), "rect")):
        root, got = marks(fig)
        assert [(m["series"], m["x"], m["y"]) for m in got] == [
            ("a", "2026-11-01", "1"), ("a", "2026-11-02", "0"), ("a", "2026-11-03", "7"),
            ("b", "2026-11-01", "2"), ("b", "2026-11-02", "5")], fig.kind
        assert {m["tag"] for m in got} == {tag} and {m["column"] for m in got} == {"unique_stories"}
        assert got[2]["title"] == "a stories · 2026-11-03: 7"
        assert not list(root.iter(f"{SVG}script")) and not list(root.iter(f"{SVG}desc"))


def test_points_on_categories_and_horizontal_bars():
    t0 = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
    s = Series("wire", "wire", "outlet", [t0, t0 + timedelta(hours=2)], [1, 0], text=["score 0.9", "score 1"])
    _, got = marks(Figure("points", [s], categories=["later.example", "first.example"]))
    assert [(m["x"], m["y"]) for m in got] == [("2026-11-03 09:30", "first.example"), ("2026-11-03 11:30", "later.example")]
    assert got[0]["title"] == "wire · 2026-11-03 09:30: first.example · score 0.9"
    _, got = marks(Figure("hbars", [Series("matches", "matches", "matches", ["x.example", "y.example"], [3, 9])],
                          labels=["x.example", "y.example"]))
    assert [(m["x"], m["y"]) for m in got] == [("x.example", "3"), ("y.example", "9")]


def test_a_ratio_is_titled_as_a_percentage_and_an_empty_chart_says_so():
    _, got = marks(Figure("lines", [Series("share", "t", "wire_share", [date(2026, 11, 1)], [0.25])], labels=["2026-11-01"],
                          percent=True))
    assert got[0]["y"] == "0.25" and got[0]["title"].endswith(": 25.0%")  # the number, and as people read it
    root, got = marks(Figure("lines", [], labels=["2026-11-01"]))
    assert not got and "no data in this range" in "".join(root.itertext())


def test_per_topic_charts_draw_the_topics_with_most_copies_and_say_so(world_store, monkeypatch):
    from pipeline.dashboard import pages
    from pipeline.dashboard.app import Readers
    from pipeline.dashboard.queries import Filters

    readers = Readers(world_store)
    try:
        full = pages.overview(readers, Filters.default())
        monkeypatch.setattr(pages, "TOPIC_LINES", 2)
        capped = pages.overview(readers, Filters.default())
    finally:
        readers.close()
    chart = {b.name: b for b in full.blocks}["alerts"]
    ti, ci = chart.table.cols.index("topic"), chart.table.cols.index("copies")
    copies: dict[str, int] = {}
    for r in chart.table.rows:
        copies[r[ti]] = copies.get(r[ti], 0) + r[ci]
    assert len(copies) == 3 and {s.series for s in chart.figure.series} == set(copies)
    assert "most copies" not in chart.title
    top2 = set(sorted(copies, key=lambda k: (-copies[k], k))[:2])
    c = {b.name: b for b in capped.blocks}["alerts"]
    assert {s.series for s in c.figure.series} == top2
    assert c.title.endswith("(the 2 of 3 topics with the most copies; the CSV has all)")
    assert c.table.rows == chart.table.rows  # the CSV keeps every topic
