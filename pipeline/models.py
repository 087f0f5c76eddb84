"""Frozen records passed between stages.

They are plain dataclasses of str/int/float/tuple/datetime so that Beam can pickle them and so
that they serialise to JSON lines (`to_json`/`from_json`) for the shards that storage loads.
Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")

# Every feed item ends with exactly one of these (ARCHITECTURE: one counted disposition per item).
DISPOSITIONS = (
    "pending",          # written to the spool, not processed yet
    "stored",           # a new article was stored (original, near_copy or rewrite of a story)
    "duplicate_url",    # its canonical URL is an article already stored: nothing new
    "exact_copy",       # same normalised text as a stored article under another URL: folded into it
    "too_short",        # extracted text below the minimum length
    "extract_failed",   # trafilatura found no main text
    "download_failed",  # the page could not be fetched (after retries)
    "refused",          # the page URL points at a private/loopback address or is not http(s)
)

LINK_TYPES = ("original", "exact_copy", "near_copy", "rewrite")


@dataclass(frozen=True)
class FeedItem:
    """One entry of a feed, as first seen."""

    item_id: str                 # stable hash of (feed_id, guid or link)
    feed_id: str
    guid: str
    url: str
    title: str
    summary: str
    published: datetime | None
    seen_at: datetime


@dataclass(frozen=True)
class Page:
    """The result of downloading an item's article page."""

    item: FeedItem
    final_url: str
    status: int
    html: str
    error: str | None = None      # set when the download failed; html is then ""
    error_kind: str | None = None  # "refused" or "download_failed"


@dataclass(frozen=True)
class Article:
    """Main text and metadata extracted from a page."""

    article_id: str               # hash of the canonical URL
    item_id: str
    feed_id: str
    url: str                      # the URL we fetched (after redirects)
    canonical_url: str            # rel=canonical or cleaned URL, tracking parameters stripped
    title: str
    text: str
    published: datetime | None
    author: str | None
    sitename: str | None
    language: str | None
    text_hash: str                # hash of the normalised text (exact-copy detection)
    fetched_at: datetime
    page: bytes | None = None     # the fetched HTML, compressed (pipeline.pages); stored in `pages`


@dataclass(frozen=True)
class DedupDoc:
    """What story folding needs to know of a document (an Article, or a record of `newsmon dedup`)."""

    doc_id: str
    text: str
    title: str = ""
    url: str = ""
    published: datetime | None = None
    source: str = ""


@dataclass(frozen=True)
class StoryAssignment:
    """Which story a document belongs to, and how it was linked."""

    doc_id: str
    story_id: str
    link: str                     # one of LINK_TYPES
    matched_doc_id: str | None    # the document it was linked to (None for "original")
    score: float                  # the deciding score of the rung that linked it (1.0 for exact)


@dataclass(frozen=True)
class Evidence:
    """Why a topic matched: which rule clause or exemplar, which words, in which zone."""

    kind: str                     # "rule" or "exemplar"
    detail: str                   # the clause text, or the exemplar id
    zone: str                     # "title", "lead" or "body"
    spans: tuple[str, ...] = ()   # the matched words/phrases as they appear in the text


@dataclass(frozen=True)
class TopicMatch:
    doc_id: str
    topic: str
    score: float
    level: str                    # "alert" (about the topic) or "mention" (mentions it only)
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)
    alert: bool = False           # raises an alert: level "alert", or "mention" on a topic that alerts on mentions


@dataclass(frozen=True)
class ItemResult:
    """What the batch pipeline emits for one feed item; storage loads these."""

    item: FeedItem
    disposition: str                        # one of DISPOSITIONS
    detail: str | None = None               # why (error message, matched id, length)
    article: Article | None = None
    assignment: StoryAssignment | None = None
    matches: tuple[TopicMatch, ...] = ()
    wire_agency: str | None = None          # "Reuters", "AP", ... when the text credits one


@dataclass(frozen=True)
class FeedState:
    """Per-feed fetch state, one row of the feed_state table."""

    feed_id: str
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_error_kind: str | None = None
    error_streak: int = 0
    next_due_at: datetime | None = None
    items_total: int = 0
    # Politeness (migration 002). Rows written before it read these back as None: treat None
    # as the default.
    validators_trusted: bool = True       # False once a 304 was caught hiding changed content
    not_modified_count: int = 0           # 304s since the last unconditional fetch
    last_full_fetch_at: datetime | None = None  # last unconditional 200 (the self-check baseline)
    interval_minutes: float | None = None  # the adapted poll interval now in force
    feed_hint_minutes: float | None = None  # RSS ttl / sy:updatePeriod of the last parsed body
    idle_polls: int = 0                   # successful polls in a row without new items (decays)
    permanent_streak: int = 0             # permanent errors since the last success
    disabled: bool = False                # too many permanent errors: retried once a day


# ---------------------------------------------------------------------------------------------
# JSON round trip for shards and the batch commands.


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, bytes):
        return base64.b64encode(o).decode("ascii")
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_dict(record: Any) -> dict[str, Any]:
    return dataclasses.asdict(record)


def to_json(record: Any) -> str:
    return json.dumps(to_dict(record), default=_default, ensure_ascii=False, sort_keys=True)


def parse_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a record, and the records nested in it, from `to_dict`/JSON output."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name])
    return cls(**kwargs)


def _coerce(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        return tuple(_coerce(args[0], v) for v in value)
    if tp is datetime:
        return parse_datetime(value)
    if tp is bytes and isinstance(value, str):
        return base64.b64decode(value)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value)  # type: ignore[arg-type]
    return value
