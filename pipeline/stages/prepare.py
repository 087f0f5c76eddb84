"""The per-article part of folding and matching, made beside extraction.

With extraction on worker processes (`pipeline.extract_processes` > 1), each worker that extracts
an article also makes what the story index needs of it alone (its cut text, terms, term ids and
weights: `prepare_document`), finds its wire agency and matches it against the topics
(`ArticlePrep`). These depend on the article alone, so the fold, which runs on
one key after all of them, is left with the index look-ups, and both cores share the rest. The
results are the same as when the fold and MatchTopics make them: the same functions on the same
article. Matching an article before the fold knows it is a copy costs a little work on copies
(their matches are dropped), which is cheaper than a second round trip to the workers.
"""

from __future__ import annotations

from pipeline.models import Article, FeedItem
from pipeline.stages.dedup import DedupSettings
from pipeline.stages.extract import detect_wire_agency
from pipeline.stages.match import cached_topics, topic_matches
from pipeline.stages.stories import ArticlePrep, as_dedup_doc
from pipeline.stories.index import prepare_document


def prepare_article(item: FeedItem, article: Article, settings: DedupSettings, topics_dir: str | None) -> ArticlePrep:
    """The fold's cut, the wire agency and (with `topics_dir`) the topic matches of `article`."""
    doc = prepare_document(as_dedup_doc(article), settings)
    matches = topic_matches(article, cached_topics(topics_dir)) if topics_dir is not None else None
    return ArticlePrep(doc=doc, wire_agency=detect_wire_agency(article.text), matches=matches)
