"""Pages to HTML: one Jinja template (autoescaped) for every page, shared by server and report."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import jinja2

from pipeline import __version__
from pipeline.dashboard.pages import PAGES, Links, Page, cell

# A table shows at most this many rows (its CSV has them all): a 2,000-feed table is a page the
# browser takes seconds to lay out.
MAX_ROWS = 300


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.dashboard", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = cell
    env.globals["MAX_ROWS"] = MAX_ROWS
    return env


def render(page: Page, links: Links, *, story_id: str = "", generated: datetime | None = None) -> str:
    return _env().get_template("page.html").render(
        page=page, links=links, nav=PAGES, story_id=story_id, static=links.static, version=__version__,
        generated=(generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
    )


def render_error(message: str, links: Links, status: int) -> str:
    return _env().get_template("error.html").render(message=message, status=status, links=links, nav=PAGES,
                                                    static=links.static, version=__version__)
