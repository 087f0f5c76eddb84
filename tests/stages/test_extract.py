"""Extraction of one page: the publication date an article gets (pure, no network)."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline.models import Article, FeedItem, Page
from pipeline.stages.extract import extract_article

NOW = datetime(2025, 8, 3, 12, 0, tzinfo=UTC)
BODY = " ".join(
    f"Paragraph {n}: the harbour authority said the new ferry line would start in the spring, "
    "after months of talks with the two island councils about fares and timetables."
    for n in range(6)
)


def _page(feed_published: datetime | None, page_date: str | None) -> Page:
    meta = f'<meta property="article:published_time" content="{page_date}">' if page_date else ""
    html = (
        f"<html><head><title>Ferry line to start in spring</title>{meta}</head><body><article>"
        "<h1>Ferry line to start in spring</h1>"
        + "".join(f"<p>{p}.</p>" for p in BODY.split(". "))
        + "</article></body></html>"
    )
    item = FeedItem("i1", "f1", "g1", "https://news.example/ferry", "Ferry line", "", feed_published, NOW)
    return Page(item, "https://news.example/ferry", 200, html)


def _published(feed_published: datetime | None, page_date: str | None) -> datetime | None:
    out = extract_article(_page(feed_published, page_date), min_chars=100, now=NOW)
    assert isinstance(out, Article), out
    return out.published


def test_a_page_date_is_kept_and_a_feed_time_on_the_same_day_refines_it() -> None:
    assert _published(None, "2025-07-30") == datetime(2025, 7, 30, tzinfo=UTC)
    refined = datetime(2025, 7, 30, 6, 45, tzinfo=UTC)
    assert _published(refined, "2025-07-30") == refined
    assert _published(datetime(2025, 7, 29, 6, 45, tzinfo=UTC), "2025-07-30") == datetime(2025, 7, 30, tzinfo=UTC)


def test_the_feed_time_fills_in_for_a_page_without_a_date() -> None:
    when = datetime(2025, 8, 2, 9, 15, tzinfo=UTC)
    assert _published(when, None) == when


def test_a_date_after_the_fetch_counts_as_published_at_the_fetch() -> None:
    # A feed claiming 2030 would otherwise move the story index's retention horizon to 2030.
    assert _published(datetime(2030, 1, 1, tzinfo=UTC), None) == NOW


def _with_full_metadata(page: Page) -> dict:
    """The Article fields as trafilatura's own `with_metadata=True` path gives them."""
    import trafilatura

    from pipeline.stages.extract import _DATE_PARAMS

    doc = trafilatura.bare_extraction(page.html, url=page.final_url, include_comments=False, with_metadata=True,
                                      date_extraction_params=dict(_DATE_PARAMS), fast=True)
    return {"text": (doc.text or "").strip(), "title": doc.title, "author": doc.author, "url": doc.url,
            "date": doc.date, "sitename": doc.sitename or doc.hostname, "language": doc.language}


def test_the_kept_metadata_equals_trafilaturas_full_metadata_on_the_corpus(corpora) -> None:
    """page_metadata skips categories, tags and licence; every field an Article keeps (and the
    text) must come out as trafilatura's full metadata extraction gives it, page by page."""
    import json

    from trafilatura.utils import load_html

    from pipeline.stages.extract import page_metadata

    base = corpora / "extraction"
    lines = (base / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    checked = 0
    for line in lines[::3]:  # every third page: 61 of the 181, a spread of sites
        rec = json.loads(line)
        html = (base / rec["html_path"]).read_bytes().decode(rec.get("html_encoding") or "utf-8", errors="replace")
        page = Page(FeedItem("i", "f", "g", rec["url"], "", "", None, NOW), rec["url"], 200, html)
        want = _with_full_metadata(page)
        meta = page_metadata(load_html(html), rec["url"])
        got = {"title": meta.title, "author": meta.author, "url": meta.url, "date": meta.date,
               "sitename": meta.sitename or meta.hostname, "language": meta.language}
        assert got == {k: v for k, v in want.items() if k != "text"}, rec["id"]
        art = extract_article(page, min_chars=0, now=NOW)
        assert isinstance(art, Article) and art.text == want["text"], rec["id"]
        checked += 1
    assert checked >= 60
