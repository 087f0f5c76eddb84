"""FoldStories: Articles -> (Article, StoryAssignment, disposition), against stored history.

Consumes `Article`s and, as a side input, recent history `(DedupDoc, story_id)` read from the
store before the pipeline starts (stages never hold the database). Emits `Folded`.

Folding depends on what came before, so it is not element-wise: the batch's articles meet in
one place and are folded in publication order (ties by id), which makes the result independent
of the order in which a runner delivers them. One key is the simplest correct choice for batches
of a few thousand articles; the per-article cost stays flat because candidates come from an LSH
index and a time window, not from a scan of history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC

import apache_beam as beam

from pipeline.models import Article, DedupDoc, FeedItem, StoryAssignment
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


def as_dedup_doc(a: Article) -> DedupDoc:
    return DedupDoc(a.article_id, a.text, a.title, a.canonical_url, a.published, a.sitename or a.feed_id)


def _order(pair: tuple[FeedItem, Article]) -> tuple[str, str, bool, str]:
    item, a = pair
    when = a.published.astimezone(UTC).isoformat() if a.published else "9999"
    # When one article arrives through several items, the one linked by its clean URL (not a
    # tracking-parameter variant from another feed) is the one stored.
    return (when, a.article_id, item.url != a.canonical_url, item.item_id)


def fold_batch(
    articles: Iterable[tuple[FeedItem, Article]],
    history: Sequence[tuple[DedupDoc, str]],
    settings: DedupSettings,
) -> list[Folded]:
    """Pure: assign every article of a batch to a story, given the stored history."""
    index = StoryIndex(settings)
    story_of: dict[str, str] = {}  # article_id -> story_id of everything indexed
    for doc, story_id in history:
        index.add(doc, story_id=story_id)
        story_of[doc.doc_id] = story_id
    ordered = sorted(articles, key=_order)
    # Count the whole batch into the word statistics first, so the batch's early articles are
    # weighed against the same corpus as its late ones (matters most on a first run).
    index.observe(as_dedup_doc(a) for _, a in ordered)
    out: list[Folded] = []
    for item, art in ordered:
        wire = detect_wire_agency(art.text)
        if art.article_id in story_of:
            # Same canonical URL as an article already indexed: the same article seen again.
            asg = StoryAssignment(art.article_id, story_of[art.article_id], "exact_copy", art.article_id, 1.0)
            out.append(Folded(item, art, asg, "duplicate_url", f"same canonical URL as article {art.article_id}", wire))
            continue
        asg = index.add(as_dedup_doc(art))
        story_of[art.article_id] = asg.story_id
        if asg.link == "exact_copy":
            out.append(Folded(item, art, asg, "exact_copy", f"same text as article {asg.matched_doc_id}", wire))
        else:
            out.append(Folded(item, art, asg, "stored", None, wire))
    return out


class _FoldFn(beam.DoFn):
    def __init__(self, settings: DedupSettings) -> None:
        self.settings = settings

    def process(self, keyed, history):
        _, articles = keyed
        yield from fold_batch(articles, history, self.settings)


class FoldStories(beam.PTransform):
    """(FeedItem, Article) pairs -> Folded, with the stored history as a side input."""

    def __init__(self, settings: DedupSettings, history) -> None:
        super().__init__()
        self.settings = settings
        self.history = history  # a PCollection of (DedupDoc, story_id)

    def expand(self, articles):
        return (
            articles
            | "OneKey" >> beam.Map(lambda pair: (0, pair))
            | "Gather" >> beam.GroupByKey()
            | "Fold" >> beam.ParDo(_FoldFn(self.settings), history=beam.pvalue.AsList(self.history))
        )
