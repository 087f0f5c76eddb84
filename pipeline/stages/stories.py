"""FoldStories: Articles -> (Article, StoryAssignment, disposition), against stored history.

Consumes `Article`s and, as a side input, recent history `(DedupDoc, story_id)` read from the
store before the pipeline starts (stages never hold the database). Emits `Folded`.

Warm: with a name, the fold uses the `StoryHistory` held under that name in this process
(`WarmHistories`), which keeps the history indexed between batches; the side input then carries
only what that index lacks (nothing, in the daemon's steady state). Indexing history once, not
per batch, is what keeps a batch's cost flat as the store grows.

Folding depends on what came before, so it is not element-wise: the batch's articles meet in
one place and are folded in publication order (ties by id), which makes the result independent
of the order in which a runner delivers them. One key is the simplest correct choice for batches
of a few thousand articles; the per-article cost stays flat because candidates come from an LSH
index and a time window, not from a scan of history.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import apache_beam as beam

from pipeline.models import Article, DedupDoc, FeedItem, StoryAssignment, TopicMatch
from pipeline.stages.dedup import DedupSettings, StoryIndex
from pipeline.stages.extract import detect_wire_agency


@dataclass(frozen=True)
class Folded:
    item: FeedItem
    article: Article
    assignment: StoryAssignment
    disposition: str              # stored, duplicate_url or exact_copy
    detail: str | None
    wire_agency: str | None
    # The article's topic matches when they were made beside its extraction (`ArticlePrep`),
    # else None: MatchTopics then matches it (either way only a stored article keeps them).
    matches: tuple[TopicMatch, ...] | None = None


@dataclass(frozen=True)
class ArticlePrep:
    """What the fold and the matcher need of one article that depends on that article alone,
    made where it was extracted (on a worker process when extraction runs on several,
    `pipeline.stages.prepare`), so that only the index look-ups run on the fold's one key:
    what the story index makes of it alone (`pipeline.stories.index.prepare_document`), its wire
    agency and its topic matches."""

    doc: tuple
    wire_agency: str | None
    matches: tuple[TopicMatch, ...] | None


def as_dedup_doc(a: Article) -> DedupDoc:
    return DedupDoc(a.article_id, a.text, a.title, a.canonical_url, a.published, a.sitename or a.feed_id)


def _order(pair: tuple) -> tuple[str, str, bool, str]:
    item, a = pair[0], pair[1]
    when = a.published.astimezone(UTC).isoformat() if a.published else "9999"
    # When one article arrives through several items, the one linked by its clean URL (not a
    # tracking-parameter variant from another feed) is the one stored.
    return (when, a.article_id, item.url != a.canonical_url, item.item_id)


class StoryHistory:
    """A `StoryIndex` over stored history that folds batch after batch.

    `fold_batch` builds one per batch from the whole history: simple, but the history is read and
    indexed again for every batch, a cost that grows with the store. The daemon instead keeps one
    between batches (see `WarmHistories`): history is indexed once, then each batch adds only its
    own articles, and the index's retention (`DedupSettings.retention_days`) evicts the old ones.
    """

    def __init__(self, settings: DedupSettings) -> None:
        self.settings = settings
        self.index = StoryIndex(settings)
        # (when indexed, doc_id) of the undated documents, oldest first: the index cannot age them.
        self._undated: deque[tuple[datetime, str]] = deque()

    def __len__(self) -> int:
        return len(self.index)

    def load(self, history: Iterable[tuple[DedupDoc, str]], now: datetime | None = None) -> None:
        """Index stored documents under their stories (those already indexed are skipped).

        `now`: when, for `forget_before`, the undated ones among them count as indexed.
        """
        for doc, story_id in history:
            self.index.add(doc, story_id=story_id)
            if doc.published is None and now is not None:
                self._undated.append((now, doc.doc_id))

    def forget_before(self, since: datetime) -> None:
        """Drop what a history read since `since` would not hold: documents published before it,
        and undated ones indexed before it."""
        self.index.forget_published_before(since)
        while self._undated and self._undated[0][0] < since:
            self.index.forget(self._undated.popleft()[1])

    def fold(self, articles: Iterable[tuple]) -> list[Folded]:
        """Assign every article of a batch to a story, and index it for the batches after.

        `articles`: (FeedItem, Article) pairs, or (FeedItem, Article, ArticlePrep) triples.
        """
        index = self.index
        ordered = sorted(articles, key=_order)
        preps: list[ArticlePrep | None] = [entry[2] if len(entry) > 2 else None for entry in ordered]
        # Count the whole batch into the word statistics first, so the batch's early articles are
        # weighed against the same corpus as its late ones (matters most on a first run).
        index.observe((as_dedup_doc(entry[1]) for entry in ordered), [p.doc if p else None for p in preps])
        out: list[Folded] = []
        for (item, art, *_), prep in zip(ordered, preps, strict=True):
            wire = prep.wire_agency if prep is not None else detect_wire_agency(art.text)
            matches = prep.matches if prep is not None else None
            known = index.assignment_of(art.article_id)
            if known is not None:
                # Same canonical URL as an article already indexed: the same article seen again.
                asg = StoryAssignment(art.article_id, known.story_id, "exact_copy", art.article_id, 1.0)
                out.append(Folded(item, art, asg, "duplicate_url", f"same canonical URL as article {art.article_id}", wire,
                                  matches))
                continue
            asg = index.add(as_dedup_doc(art))
            if art.published is None:
                self._undated.append((art.fetched_at, art.article_id))
            if asg.link == "exact_copy":
                out.append(Folded(item, art, asg, "exact_copy", f"same text as article {asg.matched_doc_id}", wire, matches))
            else:
                out.append(Folded(item, art, asg, "stored", None, wire, matches))
        return _merged(out, index.merge_new_stories(f.article.article_id for f in out if f.disposition != "duplicate_url"))


def _merged(out: list[Folded], changed: dict[str, StoryAssignment]) -> list[Folded]:
    """The batch's Folded with the stories the index joined once the batch was in
    (`StoryIndex.merge_new_stories`): a changed article takes its new assignment, and an article
    seen again by URL the story of the one it repeats."""
    if not changed:
        return out
    moved = {f.assignment.story_id: changed[f.article.article_id].story_id
             for f in out if f.disposition != "duplicate_url" and f.article.article_id in changed}
    result = []
    for f in out:
        if f.disposition != "duplicate_url" and f.article.article_id in changed:
            f = replace(f, assignment=changed[f.article.article_id])
        elif f.assignment.story_id in moved:
            f = replace(f, assignment=replace(f.assignment, story_id=moved[f.assignment.story_id]))
        result.append(f)
    return result


def fold_batch(
    articles: Iterable[tuple],
    history: Sequence[tuple[DedupDoc, str]],
    settings: DedupSettings,
) -> list[Folded]:
    """Pure: assign every article of a batch to a story, given the stored history."""
    stories = StoryHistory(settings)
    stories.load(history)
    return stories.fold(articles)


class WarmHistories:
    """`StoryHistory` objects kept in this process between pipeline runs, by name.

    Only a runner that executes the fold in this process (the in-process FnApiRunner) can use
    one: a worker elsewhere would not find it, and says so. The owner discards it when a batch
    fails after folding, since the index then holds articles the store never committed.
    """

    _held: dict[str, StoryHistory] = {}
    _lock = threading.Lock()

    @classmethod
    def put(cls, name: str, stories: StoryHistory) -> None:
        with cls._lock:
            cls._held[name] = stories

    @classmethod
    def get(cls, name: str) -> StoryHistory:
        with cls._lock:
            stories = cls._held.get(name)
        if stories is None:
            raise RuntimeError(
                f"story index {name!r} is not held by this process: a warm story index needs the "
                "in-process runner (pipeline.runner: FnApiRunner without direct_running_mode)"
            )
        return stories

    @classmethod
    def discard(cls, name: str) -> None:
        with cls._lock:
            cls._held.pop(name, None)


class _FoldFn(beam.DoFn):
    def __init__(self, settings: DedupSettings, warm: str | None = None) -> None:
        self.settings = settings
        self.warm = warm

    def process(self, keyed, history):
        _, articles = keyed
        if self.warm is None:
            yield from fold_batch(articles, history, self.settings)
            return
        stories = WarmHistories.get(self.warm)
        stories.load(history)
        yield from stories.fold(articles)


class FoldStories(beam.PTransform):
    """(FeedItem, Article) pairs, or (FeedItem, Article, ArticlePrep) triples -> Folded, with the
    stored history as a side input."""

    def __init__(self, settings: DedupSettings, history, warm: str | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.history = history  # a PCollection of (DedupDoc, story_id)
        self.warm = warm        # the name of a StoryHistory in WarmHistories, or None

    def expand(self, articles):
        return (
            articles
            | "OneKey" >> beam.Map(lambda pair: (0, pair))
            | "Gather" >> beam.GroupByKey()
            | "Fold" >> beam.ParDo(_FoldFn(self.settings, self.warm), history=beam.pvalue.AsList(self.history))
        )
