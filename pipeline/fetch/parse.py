"""Feed parsing: response bytes -> `ParsedFeed` of `FeedItem`s.

Contract
--------
`parse_feed(feed_id, body, base_url=..., headers=..., seen_at=...)` hands the raw bytes and the
response headers to feedparser (the Content-Type charset matters for RSS/Atom served as text/xml,
RFC 7303 §3) and returns one `FeedItem` per usable entry:

* Malformed ("bozo") feeds are kept when they still yield entries: most real-world bozo feeds
  do, and dropping them would lose news. `bozo`/`bozo_reason` say what was wrong.
* An entry with neither a link nor an id cannot be told apart from the next one and is skipped;
  `skipped` counts them. An entry whose id repeats an earlier one in the same document is dropped
  and counted in `duplicates`.
* `url` is the entry link resolved against the feed's base (xml:base, else `base_url`); it is ""
  when the entry has no http(s) link (e.g. an Atom entry with only a `urn:` id).
* `guid` is the entry id, else the link; `item_id` hashes it with the feed id.
* `published` is the published date, else the updated date, as aware UTC; None when absent.
* `title` and `summary` are plain text: tags stripped, entities decoded, whitespace collapsed;
  the summary is cut to 2,000 characters.

`PermanentFetchError(kind="parse")` is raised only when the body is not a feed at all: feedparser
recognised no feed format and found no entries (an HTML page, JSON, an empty body).
"""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from pipeline.errors import PermanentFetchError
from pipeline.models import FeedItem

SUMMARY_MAX_CHARS = 2_000

# RSS syndication module (sy:updatePeriod): the period names and their length in minutes. The
# module's default period is daily and its default frequency 1.
_PERIOD_MINUTES = {"hourly": 60, "daily": 1_440, "weekly": 10_080, "monthly": 43_200, "yearly": 525_600}


@dataclass(frozen=True)
class ParsedFeed:
    items: tuple[FeedItem, ...]
    bozo: bool
    bozo_reason: str | None
    title: str | None
    ttl_minutes: int | None  # RSS <ttl>
    update_period_minutes: int | None  # sy:updatePeriod / sy:updateFrequency
    skipped: int = 0  # entries with neither link nor id
    duplicates: int = 0  # entries repeating an earlier id in the same document


def item_id(feed_id: str, guid_or_link: str) -> str:
    """Stable id of an item: 20 hex chars of sha1(feed_id NUL key)."""
    return hashlib.sha1(f"{feed_id}\x00{guid_or_link}".encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# Text cleaning

_DROP_BLOCKS = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def html_to_text(value: str) -> str:
    """Plain text of an HTML fragment: good enough for titles and summaries, not for articles."""
    value = _DROP_BLOCKS.sub(" ", value)
    value = _CDATA.sub(r"\1", value)
    value = _TAG.sub(" ", value)
    value = html.unescape(value)
    return _SPACE.sub(" ", value).strip()


def _plain(value: Any, detail: Any) -> str:
    """feedparser leaves text/plain values unescaped and (x)html values as markup."""
    if not isinstance(value, str) or not value:
        return ""
    kind = detail.get("type", "") if isinstance(detail, Mapping) else ""
    if "html" in kind:
        return html_to_text(value)
    return _SPACE.sub(" ", value).strip()


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    # Prefer ending on a word boundary when one is reasonably close.
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip()


# ---------------------------------------------------------------------------------------------
# Field helpers


def _to_utc(parsed: Any) -> datetime | None:
    """feedparser's *_parsed values are UTC struct_time; some are out of range (day 0, year 0)."""
    if not parsed:
        return None
    try:
        return datetime(*parsed[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _raw(entry: Mapping[str, Any], key: str) -> Any:
    """Plain dict lookup: FeedParserDict.get("updated_parsed") falls back to the published date
    with a DeprecationWarning, which would blur the published/updated order chosen here."""
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def _positive_int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _update_period(feed: Mapping[str, Any]) -> int | None:
    period = feed.get("sy_updateperiod")
    frequency = feed.get("sy_updatefrequency")
    if period is None and frequency is None:
        return None
    minutes = _PERIOD_MINUTES.get(str(period or "daily").strip().lower())
    if minutes is None:
        return None
    times = _positive_int(frequency) if frequency is not None else 1
    if times is None:
        return None
    return max(1, minutes // times)


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _resolve(base_url: str, link: str) -> str:
    try:
        return urljoin(base_url, link)
    except ValueError:  # e.g. a malformed IPv6 literal in the link
        return link


def _bozo_reason(exc: Any) -> str | None:
    if exc is None:
        return None
    text = f"{type(exc).__name__}: {exc}"
    return text[:300]


# ---------------------------------------------------------------------------------------------


def parse_feed(
    feed_id: str,
    body: bytes,
    *,
    base_url: str,
    headers: Mapping[str, str] | None,
    seen_at: datetime,
) -> ParsedFeed:
    """Parse a feed document. See the module docstring for the contract."""
    response_headers = {name.lower(): value for name, value in (headers or {}).items()}
    if response_headers:
        # feedparser takes the document base from Content-Location; give it the URL the body
        # came from so that relative links resolve as a browser would (RFC 3986 §5.1.3). Only
        # with real headers: any header set without Content-Type makes feedparser assume
        # ISO-8859-1 and flag the feed, so none are invented. Links still relative after parsing
        # are resolved against base_url below.
        response_headers["content-location"] = _resolve(
            base_url, response_headers.get("content-location", "")
        )

    # A file-like object, never bytes: feedparser treats a bytes/str argument that names an
    # existing file as a path to open, and a URL-shaped one as something to download.
    try:
        parsed = feedparser.parse(io.BytesIO(body), response_headers=response_headers)
    except Exception as exc:  # hostile input must cost one feed, never the stage that parses it
        raise PermanentFetchError(
            f"feed {feed_id}: parser failed ({type(exc).__name__}: {exc})", kind="parse"
        ) from exc
    entries = parsed.get("entries") or []
    if not parsed.get("version") and not entries:
        reason = _bozo_reason(parsed.get("bozo_exception")) or "no feed format recognised"
        raise PermanentFetchError(f"feed {feed_id}: body is not a feed ({reason})", kind="parse")

    items: list[FeedItem] = []
    seen_ids: set[str] = set()
    skipped = duplicates = 0
    for entry in entries:
        link = (entry.get("link") or "").strip()
        entry_id = (entry.get("id") or "").strip()
        if not link and not entry_id:
            skipped += 1
            continue
        url = _resolve(base_url, link) if link else ""
        if not _http_url(url):
            url = entry_id if _http_url(entry_id) else ""
        guid = entry_id or url or link
        key = item_id(feed_id, guid)
        if key in seen_ids:
            duplicates += 1
            continue
        seen_ids.add(key)
        content = entry.get("content") or [{}]
        # feedparser copies <content> into `summary` when there is no summary, without a
        # summary_detail; the content's own type then says whether it is markup.
        summary = _plain(entry.get("summary"), entry.get("summary_detail") or content[0])
        if not summary:
            summary = _plain(content[0].get("value"), content[0])
        items.append(
            FeedItem(
                item_id=key,
                feed_id=feed_id,
                guid=guid,
                url=url,
                title=_plain(entry.get("title"), entry.get("title_detail")),
                summary=_truncate(summary, SUMMARY_MAX_CHARS),
                published=_to_utc(_raw(entry, "published_parsed")) or _to_utc(_raw(entry, "updated_parsed")),
                seen_at=seen_at,
            )
        )

    feed = parsed.get("feed") or {}
    title = _plain(feed.get("title"), feed.get("title_detail")) or None
    return ParsedFeed(
        items=tuple(items),
        bozo=bool(parsed.get("bozo")),
        bozo_reason=_bozo_reason(parsed.get("bozo_exception")) if parsed.get("bozo") else None,
        title=title,
        ttl_minutes=_positive_int(feed.get("ttl")) if feed.get("ttl") is not None else None,
        update_period_minutes=_update_period(feed),
        skipped=skipped,
        duplicates=duplicates,
    )
