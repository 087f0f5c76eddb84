"""Charts drawn on the server as SVG by pygal, inlined in the page: no chart script at all.

The browser has nothing to fetch or compile for a chart, so a cold first page costs what a warm
one does (plotly.js, 4.8 MB, took 2.5-4.6 s to fetch and compile cold at load ~10). pygal is
pure Python, well kept (Kozea, 3.x) and fast here: ~40 ms for a 186-point chart, against
~105 ms for matplotlib's SVG backend (which imports in ~1 s) and ~95 ms for Vega-Lite through
vl-convert (an 84 MB V8 build, 1.4 s for the first chart) in one comparison on this machine.

Every mark carries its numbers: `data-series`, `data-column`, `data-x`, `data-y` attributes (the
browser tests read them back) and a `<title>`, which the browser shows on hover. A chart is
described by a small spec (`Figure`), built by pages.py and drawn by `svg()`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# plotly's default qualitative colours: the charts keep the colours they had
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
DASH = {"solid": None, "dot": "2,4", "dash": "8,4"}
WIDTH = 1200  # the viewBox; the SVG scales to the block's width


@dataclass
class Series:
    name: str                 # the legend's label
    series: str               # the group it belongs to (a topic, a level, a link type)
    column: str               # the column of the table its values come from
    x: list[Any]
    y: list[Any]              # None: no point there (a ratio on a day without articles)
    color: str = PALETTE[0]
    dash: str = "solid"
    text: list[str] | None = None  # per point, for the hover title


@dataclass
class Figure:
    kind: str                 # "lines" and "bars" over day labels; "hbars"; "points": x a time
    series: list[Series] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)   # x labels (lines, bars, hbars)
    categories: list[str] = field(default_factory=list)  # points: y is an index into these
    stack: bool = False
    y_title: str = ""
    percent: bool = False
    height: int = 320

    def numbers(self) -> list[dict[str, Any]]:
        """What the chart shows, series by series (for tests and the JSON of a chart)."""
        return [{"name": s.name, "series": s.series, "column": s.column, "x": s.x, "y": s.y} for s in self.series]


def _fmt(v: Any, percent: bool = False) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, float):
        return f"{v:.1%}" if percent else (f"{v:.3f}".rstrip("0").rstrip(".") or "0")
    return str(v)


def _style(colors: list[str]) -> Any:
    from pygal.style import Style

    return Style(background="#ffffff", plot_background="#ffffff", foreground="#444", foreground_strong="#1d2330",
                 foreground_subtle="#e6e8ee", colors=tuple(colors) or PALETTE, opacity=".85", opacity_hover="1",
                 transition="none", guide_stroke_color="#e6e8ee", major_guide_stroke_color="#d5d9e2",
                 guide_stroke_dasharray="none", major_guide_stroke_dasharray="none", font_family="system-ui, sans-serif", label_font_size=12,
                 major_label_font_size=12, legend_font_size=12, title_font_size=13, tooltip_font_size=12)


def svg(fig: Figure) -> str:
    """The chart as an SVG element (no XML declaration, no script), to inline in HTML."""
    n = len(fig.series)
    cfg: dict[str, Any] = dict(
        style=_style([s.color for s in fig.series]), js=[], width=WIDTH, height=fig.height,
        show_legend=n > 1, legend_at_bottom=True, legend_at_bottom_columns=min(max(n, 1), 6),
        legend_box_size=10, truncate_legend=-1, truncate_label=-1, margin=8, spacing=8,
        no_data_text="no data in this range", y_title=fig.y_title or None, print_values=False,
        show_x_guides=False, show_y_guides=True, include_x_axis=fig.kind != "points", classes=["newsmon-chart"],
    )
    if fig.percent:
        cfg["value_formatter"] = lambda v: f"{v:.0%}"
    if fig.kind in ("lines", "bars"):
        every = max(1, len(fig.labels) // 8)
        cfg.update(x_labels=fig.labels, x_labels_major_every=every, show_minor_x_labels=False)
        cls = _lean("Line" if fig.kind == "lines" else "StackedBar" if fig.stack else "Bar")
        if fig.kind == "lines":
            cfg.update(dots_size=2.5, stroke_style={"width": 2}, allow_interruptions=True)
    elif fig.kind == "hbars":
        cfg.update(x_labels=fig.labels)
        cls = _lean("HorizontalBar")
    else:
        cls = _lean("DateTimeLine")
        cfg.update(stroke=False, dots_size=4, x_value_formatter=lambda d: d.strftime("%m-%d %H:%M"),
                   x_label_rotation=0, show_y_guides=False)
        if fig.categories:
            k = len(fig.categories)
            cfg.update(y_labels=[{"label": c, "value": i} for i, c in enumerate(fig.categories)],
                       range=(-0.5, k - 0.5), show_y_guides=True)
    chart = cls(**cfg)
    for s in fig.series:
        values = []
        for i, (x, y) in enumerate(zip(s.x, s.y, strict=True)):
            if y is None:
                values.append(None)
                continue
            shown = fig.categories[y] if fig.categories else _fmt(y, fig.percent)
            extra = f" · {s.text[i]}" if s.text else ""
            tip = f"{s.name or s.column} · {_fmt(x)}: {shown}{extra}"
            node = {"data-series": s.series, "data-column": s.column, "data-x": _fmt(x),
                    "data-y": shown if fig.categories else _fmt(y)}
            values.append({"value": (x, y) if fig.kind == "points" else y, "tooltip": tip, "node": node})
        kw: dict[str, Any] = {}
        if fig.kind == "lines" and DASH.get(s.dash):
            kw["stroke_style"] = {"width": 2, "dasharray": DASH[s.dash]}
        chart.add(s.name or s.column, values, **kw)
    chart.add_xml_filter(_drop_scripts)
    return chart.render(is_unicode=True, disable_xml_declaration=True)


@functools.cache
def _lean(name: str) -> type:
    """pygal's chart class `name`, less the <desc> nodes (value, x, y, label) it writes on every
    mark for its tooltip script, which the page does not load: a third of the SVG's bytes and a
    fifth of its drawing time on a 1,240-point chart. The <title> stays. StackedBar also gives each
    bar the `node` attributes of its value, as Bar does (its own drawing function skips them)."""
    import pygal
    from pygal.util import alter

    base = getattr(pygal, name)

    def _tooltip_data(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    attrs: dict[str, Any] = {"_tooltip_data": _tooltip_data}
    if name == "StackedBar":
        def _bar(self: Any, serie: Any, parent: Any, x: Any, y: Any, i: int, zero: Any, secondary: bool = False) -> Any:
            out = base._bar(self, serie, parent, x, y, i, zero, secondary)
            alter(parent[-1], serie.metadata.get(i))  # the rect just drawn
            return out

        attrs["_bar"] = _bar
    return type(name, (base,), attrs)


def _drop_scripts(root: Any) -> Any:
    """pygal always writes its config for its (CDN-hosted) tooltip script into a <script>; the
    page runs no script (its CSP forbids inline ones) and needs none: hover titles are SVG's."""
    for el in list(root.iter("{*}script")):
        el.getparent().remove(el)
    return root
