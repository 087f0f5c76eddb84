"""MatchTopics: Folded articles -> ItemResults carrying their topic matches.

Consumes `Folded`; emits `ItemResult`. Topics are compiled once per worker process from the
topics directory and kept there between batches (`cached_topics`: loading them costs about as much
as matching 40 articles), until one of their files changes. Only newly stored articles are matched: an exact copy or a repeated URL adds
nothing a reader has not seen, and alerts are per story anyway.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import replace
from pathlib import Path

import apache_beam as beam
import yaml

from pipeline.models import Article, ItemResult, TopicMatch
from pipeline.stages.stories import Folded
from pipeline.stages.topics import Topic, load_topics, match_article, should_alert

_cache_lock = threading.Lock()
_cache: dict[str, tuple[tuple, list[Topic]]] = {}


def _stat(path: Path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size)


def _topic_files(directory: Path) -> tuple:
    """What a loaded topic set depends on: the topic files, the models beside them and the
    exemplar files they name, each with its modification time and size."""
    out = []
    for f in sorted(directory.glob("*.y*ml")):
        stat = _stat(f)
        out += [stat, _stat(f.with_name(f"{f.stem}.model.json"))]
        out += [_stat(x) for x in _exemplar_paths(stat)]
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _exemplar_paths(topic_file: tuple) -> tuple[Path, ...]:
    """The exemplar files a topic file names (by its path, mtime and size: read once per version)."""
    f = Path(topic_file[0])
    try:
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ()  # load_topics reports it
    found = (data.get("exemplars") or []) if isinstance(data, dict) else []
    return tuple((f.parent / x["path"]).resolve() for x in found if isinstance(x, dict) and isinstance(x.get("path"), str))


def cached_topics(directory: str | Path) -> list[Topic]:
    """`load_topics(directory)`, kept in this process while none of its files changes (an edited
    topic, a retrained model or exemplar is loaded again at the next batch, as before)."""
    key = str(Path(directory).resolve())
    signature = _topic_files(Path(key)) if Path(key).is_dir() else ()
    with _cache_lock:
        held = _cache.get(key)
    if held is not None and held[0] == signature:
        return held[1]
    topics = load_topics(directory)
    with _cache_lock:
        _cache[key] = (signature, topics)
    return topics


def topic_matches(article: Article, topics: list[Topic]) -> tuple[TopicMatch, ...]:
    """The article's topic matches, each flagged whether it alerts."""
    by_id = {t.id: t for t in topics}
    return tuple(
        replace(m, alert=should_alert(m, by_id[m.topic]))
        for m in match_article(article.article_id, article.title, article.text, topics)
    )


def match_folded(f: Folded, topics: list[Topic]) -> ItemResult:
    matches: tuple[TopicMatch, ...] = ()
    if f.disposition == "stored":
        matches = f.matches if f.matches is not None else topic_matches(f.article, topics)
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
        self.topics = cached_topics(self.topics_dir)

    def process(self, f: Folded):
        yield match_folded(f, self.topics)


class MatchTopics(beam.PTransform):
    def __init__(self, topics_dir: str) -> None:
        super().__init__()
        self.topics_dir = topics_dir

    def expand(self, folded):
        return folded | "Match" >> beam.ParDo(_MatchFn(self.topics_dir))
