"""`newsmon report --out DIR`: the dashboard's pages as a static site, to share or archive.

The same page functions and template as the live dashboard, with links between files instead
of query strings: index.html (overview), stories.html, one story-<id>.html per top story,
topics.html and topics-<id>.html per topic, feeds.html; every table as csv/<page>-<table>.csv;
each page whole in its file (charts inline as SVG, the style sheet inline, no script). Opens in a browser from the file system, offline.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.dashboard import pages
from pipeline.dashboard.app import Readers
from pipeline.dashboard.pages import Links, Page
from pipeline.dashboard.queries import Filters
from pipeline.dashboard.templating import render


def write_report(data_dir: Path, out: Path, f: Filters, *, progress: Any = None) -> list[Path]:
    """Write the site into `out` (created; files of an earlier report are replaced). Returns the
    HTML files written. Built in a directory beside `out` and moved in place at the end, so an
    interrupted report leaves the previous one whole."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    readers = Readers(Path(data_dir))
    links = Links(static=True)
    now = datetime.now(UTC)
    written: list[Path] = []

    def emit(page: Page, story_id: str = "") -> None:
        name = links.page("story", story_id=story_id) if story_id else links.page(page.name, page.filters)
        (tmp / name).write_text(render(page, links, story_id=story_id, generated=now), encoding="utf-8")
        written.append(out / name)
        for b in page.blocks:
            t = b.table if isinstance(b, pages.Chart) else b
            path = tmp / links.csv(page, t.name, story_id)
            path.write_text(t.csv(), encoding="utf-8")
        if progress:
            progress(name)

    try:
        (tmp / "csv").mkdir()
        emit(pages.overview(readers, f))
        st = pages.stories(readers, f)
        emit(st)
        for sid in [r[0] for r in st.blocks[0].rows]:  # type: ignore[union-attr]
            emit(pages.story(readers, sid), sid)
        tp = pages.topics(readers, Filters(f.start, f.end, "", f.limit))
        (tmp / "topics.html").write_text(render(tp, links, generated=now), encoding="utf-8")  # the first topic's
        written.append(out / "topics.html")
        for t in tp.topics:
            emit(pages.topics(readers, Filters(f.start, f.end, t, f.limit)))
        emit(pages.feeds(readers, f))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        readers.close()
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    os.chmod(out, 0o755)
    return written
