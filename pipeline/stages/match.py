"""MatchTopics: Folded articles -> ItemResults carrying their topic matches.

Consumes `Folded`; emits `ItemResult`. Topics are compiled once per worker in setup() from the
topics directory. Only newly stored articles are matched: an exact copy or a repeated URL adds
nothing a reader has not seen, and alerts are per story anyway.
"""

from __future__ import annotations

from dataclasses import replace

import apache_beam as beam

from pipeline.models import ItemResult, TopicMatch
from pipeline.stages.stories import Folded
from pipeline.stages.topics import Topic, load_topics, match_article, should_alert


def match_folded(f: Folded, topics: list[Topic]) -> ItemResult:
    matches: tuple[TopicMatch, ...] = ()
    if f.disposition == "stored":
        by_id = {t.id: t for t in topics}
        matches = tuple(
            replace(m, alert=should_alert(m, by_id[m.topic]))
            for m in match_article(f.article.article_id, f.article.title, f.article.text, topics)
        )
    return ItemResult(
        item=f.item,
        disposition=f.disposition,
        detail=f.detail,
        article=f.article,
        assignment=f.assignment,
        matches=matches,
        wire_agency=f.wire_agency,
    )


class _MatchFn(beam.DoFn):
    def __init__(self, topics_dir: str) -> None:
        self.topics_dir = topics_dir
        self.topics: list[Topic] = []

    def setup(self) -> None:
        self.topics = load_topics(self.topics_dir)

    def process(self, f: Folded):
        yield match_folded(f, self.topics)


class MatchTopics(beam.PTransform):
    def __init__(self, topics_dir: str) -> None:
        super().__init__()
        self.topics_dir = topics_dir

    def expand(self, folded):
        return folded | "Match" >> beam.ParDo(_MatchFn(self.topics_dir))
