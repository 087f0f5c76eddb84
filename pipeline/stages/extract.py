"""ExtractArticles: a downloaded page -> an Article (main text and metadata), or a disposition.

Consumes `Page`; emits `Article`, or raises nothing: a page without usable text yields a
`Rejected(disposition, detail)` (extract_failed, too_short) so every item keeps one disposition.
trafilatura does the extraction with comments excluded: comment threads under news articles are
not the article (with them kept, F1 against human ground truth drops from 0.96 to 0.87).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import apache_beam as beam
import trafilatura
from trafilatura import metadata as tmeta
from trafilatura.settings import Document
from trafilatura.utils import load_html

from pipeline.models import Article, Page
from pipeline.pages import pack_page
from pipeline.stages.dedup import canonical_url, text_hash


@dataclass(frozen=True)
class Rejected:
    page: Page
    disposition: str
    detail: str


# "(Reuters) -", "told Reuters", "according to AP", "(AFP)": the agency the copy came from.
_WIRES = {
    "Reuters": r"Reuters",
    "AP": r"AP|Associated Press",
    "AFP": r"AFP|Agence France-Presse",
    "Bloomberg": r"Bloomberg",
    "dpa": r"dpa",
}
_WIRE_RE = {
    name: re.compile(
        rf"(?:\((?:{pat})\)|\b(?:told|according to|reported by|cited by|said to|reports?) (?:the )?(?:{pat})\b|\b(?:{pat}) (?:reported|reports|said)\b)"
    )
    for name, pat in _WIRES.items()
}


# Every credit holds one of its agency's names as written: a text without any is not scanned.
_WIRE_NAMES = {name: tuple(pat.split("|")) for name, pat in _WIRES.items()}


def detect_wire_agency(text: str) -> str | None:
    """The wire agency the text credits, by the first credit found; None when it credits none."""
    best: tuple[int, str] | None = None
    for name, rx in _WIRE_RE.items():
        if not any(word in text for word in _WIRE_NAMES[name]):
            continue
        m = rx.search(text)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), name)
    return best[1] if best else None


def article_id_for(canonical: str) -> str:
    return hashlib.sha1(canonical.encode()).hexdigest()[:20]


def _parse_date(value: str | None, feed_time: datetime | None, now: datetime) -> datetime | None:
    """The publication date: the page's, or the feed's when the page has none or agrees on the day.

    A date after `now` (the fetch) is wrong, usually a feed's: the article was out when we fetched
    it, so it counts as published then. Left alone, one such date would push the story index's
    retention horizon into the future and evict the whole history.
    """
    d = _page_date(value)
    if d is None:
        d = feed_time
    elif feed_time is not None and feed_time.date() == d.date():
        d = feed_time  # the page often gives only a day; the feed's timestamp is more precise
    if d is not None and d > now:
        return now
    return d


def _page_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        return None
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d


# The original publication date, without htmldate's extensive search: 18% faster on the
# extraction corpus and 179/181 pages still dated; the feed's date fills the rest.
_DATE_PARAMS = {"extensive_search": False, "original_date": True}


def page_metadata(tree, url: str | None) -> Document:
    """The page's metadata as `trafilatura.extract_metadata` finds it, for the fields an Article
    keeps (title, author, canonical URL, hostname, date, sitename, language) and no others.

    trafilatura also looks for categories, tags and a licence: about 40% of its metadata time on
    the extraction corpus, for fields newsmon never reads. Every step here is trafilatura's own
    function, called in its order on the same tree (none of them changes the tree), so the kept
    fields come out as `extract_metadata` gives them; tests/stages/test_extract.py checks that on
    the corpus."""
    doc = tmeta.examine_meta(tree)
    if doc.author and " " not in doc.author:  # a one-word author from the meta tags is no name
        doc.author = None
    try:
        doc = tmeta.extract_meta_json(tree, doc)
    except Exception:  # noqa: BLE001 -- trafilatura guards its JSON-LD reader the same way
        pass
    doc.title = doc.title or tmeta.extract_title(tree)
    doc.author = doc.author or tmeta.extract_author(tree)
    doc.url = doc.url or tmeta.extract_url(tree, url)
    if doc.url:
        doc.hostname = tmeta.extract_domain(doc.url, fast=True)
    doc.date = tmeta.find_date(tree, **_DATE_PARAMS, url=doc.url)
    doc.sitename = doc.sitename or tmeta.extract_sitename(tree)
    if doc.sitename:
        name = doc.sitename.lstrip("@")
        if name and "." not in name and not name[0].isupper():
            name = name.title()
        doc.sitename = name
    elif doc.url and (m := tmeta.META_URL.match(doc.url)):
        doc.sitename = m[1]
    doc.clean_and_trim()
    return doc


def extract_article(page: Page, *, min_chars: int, now: datetime, fast: bool = True) -> Article | Rejected:
    """Pure: run trafilatura on the page and build the Article (`fast=False`: with trafilatura's
    fallback extractors, as the benchmark compares)."""
    try:
        tree = load_html(page.html)
        if tree is None:
            return Rejected(page, "extract_failed", "no main text found")
        try:
            meta = page_metadata(tree, page.final_url)
        except (TypeError, ValueError):  # what trafilatura counts as "no usable document"
            return Rejected(page, "extract_failed", "no main text found")
        doc = trafilatura.bare_extraction(
            tree,
            url=page.final_url,
            include_comments=False,
            # No second opinion from the readability/jusText fallbacks: on the extraction corpus's
            # 181 pages (human-annotated text) the token F1 is 0.961 without them against 0.959
            # with them (even half 0.971 vs 0.965, odd half 0.952 vs 0.952), at about half the
            # extraction time (bench/bench_extraction.py prints both).
            fast=fast,
        )
    except Exception as e:  # trafilatura raises assorted lxml errors on broken markup
        return Rejected(page, "extract_failed", f"{type(e).__name__}: {e}")
    text = (doc.text or "").strip() if doc else ""
    if not text:
        return Rejected(page, "extract_failed", "no main text found")
    if len(text) < min_chars:
        return Rejected(page, "too_short", f"{len(text)} chars < {min_chars}")
    canonical = canonical_url(meta.url or page.final_url)
    # A rel=canonical pointing at another host is usually a syndication credit, not this page.
    if _host(canonical) != _host(canonical_url(page.final_url)):
        canonical = canonical_url(page.final_url)
    item = page.item
    return Article(
        article_id=article_id_for(canonical),
        item_id=item.item_id,
        feed_id=item.feed_id,
        url=page.final_url,
        canonical_url=canonical,
        title=(meta.title or item.title or "").strip(),
        text=text,
        published=_parse_date(meta.date, item.published, now),
        author=meta.author or None,
        sitename=meta.sitename or meta.hostname or None,
        language=meta.language or None,
        text_hash=text_hash(text),
        fetched_at=now,
    )


def _host(url: str) -> str:
    m = re.match(r"^[a-z]+://([^/:?#]+)", url)
    return (m.group(1) if m else "").removeprefix("www.")


@dataclass(frozen=True)
class Extracted:
    """The two results of ExtractArticles: (FeedItem, Article) pairs and Rejected pages."""

    articles: beam.PCollection
    rejected: beam.PCollection


IN_FLIGHT_PER_WORKER = 24   # pages handed to each extraction worker before this process waits


def _is_rejected(out: object) -> bool:
    return isinstance(out, Rejected)


def _is_article(out: object) -> bool:
    return not isinstance(out, Rejected)


def _extract_outcome(page: Page, min_chars: int, now: datetime, prepare: Callable | None = None):
    """What ExtractArticles emits for one page: (FeedItem, Article), or with `prepare`
    (FeedItem, Article, prepare(item, article)); or Rejected."""
    out = extract_article(page, min_chars=min_chars, now=now)
    if isinstance(out, Rejected):
        return out
    # The page goes along, compressed, to be stored for `newsmon reprocess` (in the worker, when
    # extraction runs on worker processes, so the compression is spread over them too).
    article = replace(out, page=pack_page(page.html))
    if prepare is None:
        return (page.item, article)
    return (page.item, article, prepare(page.item, out))


class _ExtractFn(beam.DoFn):
    """One page -> its outcome; with `processes` > 1, on that many worker processes kept in this
    process between batches (`pipeline.stages.pool`), several pages in flight at once.

    Pages in flight are emitted as they finish, and the last ones when the bundle finishes, so a
    bundle's results are the same set whatever the order. Emitting from finish_bundle needs a
    runner that honours it: the in-process FnApiRunner does (Beam's DaskRunner does not, which is
    why the settings allow `extract_processes` > 1 only with FnApiRunner)."""

    def __init__(self, min_chars: int, now: datetime, processes: int = 1, prepare: Callable | None = None) -> None:
        self.min_chars, self.now, self.processes = min_chars, now, processes
        self.prepare = prepare
        self._pending: list = []

    def start_bundle(self) -> None:
        self._pending = []

    def process(self, page: Page, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        if self.processes <= 1:
            yield _extract_outcome(page, self.min_chars, self.now, self.prepare)
            return
        from pipeline.stages.pool import shared_pool

        future = shared_pool(self.processes).submit(_extract_outcome, page, self.min_chars, self.now, self.prepare)
        self._pending.append((future, timestamp, window))
        # Keep every worker busy, and this process's memory bounded: past `IN_FLIGHT_PER_WORKER`
        # pages per worker, wait for the oldest. Enough for a whole download group to be handed
        # over at once, so that this process downloads the next group while the workers extract
        # (with 4 a worker, the downloads waited for the extraction of their group, and the
        # workers for the downloads of the next).
        if len(self._pending) > IN_FLIGHT_PER_WORKER * self.processes:
            self._pending[0][0].result()
        waiting = []
        for entry in self._pending:
            if entry[0].done():
                yield entry[0].result()
            else:
                waiting.append(entry)
        self._pending = waiting

    def finish_bundle(self):
        from apache_beam.utils.windowed_value import WindowedValue

        pending, self._pending = self._pending, []
        for future, timestamp, window in pending:
            yield WindowedValue(future.result(), timestamp, [window])


class ExtractArticles(beam.PTransform):
    """Pages -> Extracted: `articles` ((FeedItem, Article) pairs) and `rejected` (Rejected).

    Each page is extracted once; the one outcome collection then feeds two Filters. Tagged outputs
    (`with_outputs`) would say the same more briefly, but not every runner honours them (Beam's
    DaskRunner hands every element to every output), and a Filter is understood by all.

    `processes` > 1: pages are extracted on that many worker processes kept between batches (the
    in-process runner's way to use several cores; see `_ExtractFn`).

    `prepare(item, article)` (picklable): more per-article work done where the article is
    extracted; an article then comes out as (FeedItem, Article, what prepare returned)."""

    def __init__(self, min_chars: int, now: datetime, processes: int = 1, prepare: Callable | None = None) -> None:
        super().__init__()
        self.min_chars = min_chars
        self.now = now
        self.processes = processes
        self.prepare = prepare

    def expand(self, pages):
        outcomes = pages | "Extract" >> beam.ParDo(_ExtractFn(self.min_chars, self.now, self.processes, self.prepare))
        return Extracted(
            articles=outcomes | "Articles" >> beam.Filter(_is_article),
            rejected=outcomes | "Rejected" >> beam.Filter(_is_rejected),
        )
