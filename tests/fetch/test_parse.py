"""parse_feed on small hand-written feeds, then on the whole feed corpus (../shared/corpora/feeds)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import PermanentFetchError
from pipeline.fetch.parse import SUMMARY_MAX_CHARS, ParsedFeed, item_id, parse_feed

SEEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BASE = "https://news.example/feeds/main.xml"


def parse(body: bytes, headers: dict[str, str] | None = None, base_url: str = BASE) -> ParsedFeed:
    return parse_feed("feed-1", body, base_url=base_url, headers=headers, seen_at=SEEN)


RSS = (
    b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">
<channel>
  <title>Example &amp; News</title>
  <link>https://news.example/</link>
  <ttl>45</ttl>
  <sy:updatePeriod>hourly</sy:updatePeriod>
  <sy:updateFrequency>4</sy:updateFrequency>
  <item>
    <title>First &amp; foremost</title>
    <link>/2024/05/first</link>
    <guid isPermaLink="false">story-1</guid>
    <pubDate>Wed, 01 May 2024 10:30:00 +0200</pubDate>
    <description>&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt; &amp;amp; friends&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;</description>
  </item>
  <item>
    <title>Second</title>
    <link>second.html</link>
    <description>"""
    + b"word " * 1000
    + b"""</description>
  </item>
  <item>
    <title>No link, no guid: cannot be tracked</title>
    <description>orphan</description>
  </item>
  <item>
    <title>Same guid again</title>
    <link>/2024/05/first-again</link>
    <guid isPermaLink="false">story-1</guid>
  </item>
</channel>
</rss>"""
)


def test_rss_items_links_dates_and_refresh_hints() -> None:
    feed = parse(RSS, {"Content-Type": "application/rss+xml; charset=utf-8"})
    assert feed.title == "Example & News"
    assert (feed.ttl_minutes, feed.update_period_minutes) == (45, 15)
    assert not feed.bozo and feed.bozo_reason is None
    assert (feed.skipped, feed.duplicates) == (1, 1)
    first, second = feed.items
    assert first.url == "https://news.example/2024/05/first"  # relative link resolved
    assert first.guid == "story-1"
    assert first.item_id == item_id("feed-1", "story-1")
    assert first.title == "First & foremost"
    assert first.summary == "Hello world & friends"  # tags and script dropped, entities decoded
    assert first.published == datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    assert first.seen_at == SEEN and first.feed_id == "feed-1"
    assert second.url == "https://news.example/feeds/second.html"
    assert second.guid == second.url  # no guid: the link identifies the item
    assert second.published is None
    assert len(second.summary) <= SUMMARY_MAX_CHARS and second.summary.startswith("word word")


def test_relative_links_resolve_without_headers() -> None:
    feed = parse(RSS, None, base_url="https://other.example/rss")
    assert feed.items[0].url == "https://other.example/2024/05/first"
    assert not feed.bozo  # no invented headers, so no content-type complaint


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example/en/">
  <title type="html">A &lt;i&gt;blog&lt;/i&gt;</title>
  <id>urn:uuid:feed</id>
  <updated>2024-04-30T09:00:00Z</updated>
  <entry>
    <title type="html">&lt;b&gt;AT&amp;amp;T&lt;/b&gt; news</title>
    <id>tag:blog.example,2024:1</id>
    <link rel="alternate" href="posts/1"/>
    <link rel="edit" href="https://blog.example/edit/1"/>
    <published>2024-04-29T22:15:00-04:00</published>
    <updated>2024-04-30T08:00:00Z</updated>
    <summary>Plain &amp; simple</summary>
  </entry>
  <entry>
    <title>Content only</title>
    <id>urn:uuid:2</id>
    <updated>2024-04-30T07:00:00Z</updated>
    <content type="html">&lt;p&gt;Body&lt;br/&gt;text&lt;/p&gt;</content>
  </entry>
</feed>"""


def test_atom_entries() -> None:
    feed = parse(ATOM, {"content-type": "application/atom+xml"})
    assert feed.title == "A blog"
    assert feed.ttl_minutes is None and feed.update_period_minutes is None
    one, two = feed.items
    assert one.url == "https://blog.example/en/posts/1"  # xml:base wins over the fetch URL
    assert one.guid == "tag:blog.example,2024:1"
    assert one.title == "AT&T news"
    assert one.summary == "Plain & simple"
    assert one.published == datetime(2024, 4, 30, 2, 15, tzinfo=UTC)
    # No link at all: kept under its id, with no URL to download; date from <updated>.
    assert (two.url, two.guid) == ("", "urn:uuid:2")
    assert two.summary == "Body text"
    assert two.published == datetime(2024, 4, 30, 7, 0, tzinfo=UTC)


BOZO = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Caf&eacute; &nbsp; news</title>
<item><title>One&nbsp;item</title><link>https://news.example/1</link></item>
<item><title>Two</title><link>https://news.example/2</link></item>
</channel></rss>"""


def test_bozo_feed_with_undefined_entity_is_kept() -> None:
    feed = parse(BOZO, {"content-type": "application/rss+xml"})
    assert feed.bozo
    assert feed.bozo_reason and "entity" in feed.bozo_reason
    assert [i.url for i in feed.items] == ["https://news.example/1", "https://news.example/2"]


def test_header_charset_is_honoured() -> None:
    body = '<rss version="2.0"><channel><title>Новости</title><item><title>Привет</title><link>https://news.example/p</link></item></channel></rss>'.encode(
        "windows-1251"
    )
    feed = parse(body, {"Content-Type": "application/rss+xml; charset=windows-1251"})
    assert feed.title == "Новости"
    assert feed.items[0].title == "Привет"


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><head><title>Oops</title></head><body><p>Not a feed</p></body></html>",
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [{"id": "1", "url": "https://news.example/1"}]}',
        b"",
        b"/etc/passwd",  # must be parsed as content, never opened as a path
    ],
    ids=["html", "json", "empty", "path-like"],
)
def test_non_feeds_raise_parse_error(body: bytes) -> None:
    with pytest.raises(PermanentFetchError) as err:
        parse(body, {"Content-Type": "text/html"})
    assert err.value.kind == "parse"


def test_item_id() -> None:
    expected = hashlib.sha1(b"feed-1\x00https://news.example/1").hexdigest()[:20]
    assert item_id("feed-1", "https://news.example/1") == expected
    assert len(expected) == 20
    assert item_id("feed-2", "https://news.example/1") != expected


# ---------------------------------------------------------------------------------------------
# The corpus
#
# Figures measured with feedparser 6.0.14 on the 2,300 documents of the corpus. A change in them
# means parsing behaviour changed: look at what moved before updating the numbers.

EXPECTED_ITEMS = 1406  # FeedItems recovered from all documents
EXPECTED_NOT_FEEDS = 38  # JSON feeds, lone entries, non-feed XML, item-less CDF channels
EXPECTED_BOZO = 359  # malformed documents that are still feeds
EXPECTED_REAL_BOZO_KEPT = 22  # real-world bozo feeds that still give items
TOLERANCE = 0.02


def _corpus_root() -> Path:
    default = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpora"
    return Path(os.environ.get("NEWSMON_CORPORA", str(default))).resolve()


@pytest.fixture(scope="module")
def feed_manifest() -> tuple[Path, list[dict]]:
    folder = _corpus_root() / "feeds"
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        message = f"feed corpus not found at {folder} (set NEWSMON_CORPORA to the corpora folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    return folder, rows


def _near(measured: int, expected: int) -> bool:
    return abs(measured - expected) <= max(2, round(expected * TOLERANCE))


@pytest.mark.corpus
def test_corpus_parses_without_crashing(feed_manifest: tuple[Path, list[dict]]) -> None:
    folder, rows = feed_manifest
    assert len(rows) > 2000
    items = not_feeds = bozo = real_bozo_kept = 0
    lost_real_bozo: list[str] = []
    start = time.perf_counter()
    for row in rows:
        body = (folder / row["path"]).read_bytes()
        try:
            feed = parse_feed(
                row["id"],
                body,
                base_url=f"http://127.0.0.1/corpus/{row['path']}",
                headers=row.get("http_headers"),
                seen_at=SEEN,
            )
        except PermanentFetchError as exc:
            assert exc.kind == "parse", row["id"]
            not_feeds += 1
            continue
        items += len(feed.items)
        bozo += feed.bozo
        assert all(i.item_id and i.guid for i in feed.items), row["id"]
        assert all(i.published is None or i.published.tzinfo is not None for i in feed.items), row["id"]
        assert all(len(i.summary) <= SUMMARY_MAX_CHARS for i in feed.items), row["id"]
        if feed.bozo and row.get("real_world") is not False:
            if feed.items:
                real_bozo_kept += 1
            elif feed.skipped:
                lost_real_bozo.append(row["id"])
    elapsed = time.perf_counter() - start
    print(
        f"\ncorpus: {len(rows)} documents, {items} items, {bozo} bozo, {not_feeds} not feeds, "
        f"{real_bozo_kept} real-world bozo feeds kept, {elapsed:.1f}s"
    )
    assert _near(items, EXPECTED_ITEMS), items
    assert _near(not_feeds, EXPECTED_NOT_FEEDS), not_feeds
    assert _near(bozo, EXPECTED_BOZO), bozo
    assert real_bozo_kept >= EXPECTED_REAL_BOZO_KEPT - 1, real_bozo_kept
    assert lost_real_bozo == []  # (parse speed is bench/bench_poll.py's job, not a timed test)
