"""The batch pipeline: pending feed items -> ItemResult shards on disk.

    Items --DownloadPages--> Pages --ExtractArticles--> (item, Article) --FoldStories(history)-->
    Folded --MatchTopics--> ItemResult --\
    failed downloads, rejected pages ----+--> JSON lines shards --> store.load_batch()

Every item leaves the pipeline as exactly one ItemResult (with its disposition). The pipeline
never touches the database: history comes in as a side input (or, in process, as an index kept
between batches), results go out as files, and the caller loads them in one transaction. So the
same graph runs in process (FnApiRunner, the default: no download, no service) or on any Beam
runner chosen by name and options.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.fetch.http import HttpSettings
from pipeline.models import DedupDoc, FeedItem, ItemResult, Page, from_dict, to_json
from pipeline.stages.dedup import DedupSettings
from pipeline.stages.download import DownloadPages
from pipeline.stages.extract import ExtractArticles, Rejected
from pipeline.stages.match import MatchTopics
from pipeline.stages.stories import FoldStories


@dataclass(frozen=True)
class BatchOptions:
    """The slice of configuration the pipeline needs; everything here is picklable."""

    topics_dir: str
    now: datetime
    http: HttpSettings = field(default_factory=HttpSettings)
    download_workers: int = 8
    min_text_chars: int = 200
    dedup: DedupSettings = field(default_factory=DedupSettings)
    runner: str = "FnApiRunner"
    beam_args: tuple[str, ...] = ()
    honour_robots: bool = True
    robots_opt_out: frozenset[str] = frozenset()  # feed ids whose pages ignore robots.txt
    held_hosts: tuple[tuple[str, datetime], ...] = ()  # (host, until): hosts that asked for quiet
    # The name of a story index kept in this process between batches (see stages.stories
    # WarmHistories); the history side input then carries only what it lacks.
    warm_stories: str | None = None


def failed_download(page: Page) -> ItemResult:
    """A page that was not fetched. Its disposition is the page's error_kind: "refused",
    "download_failed", or "retry" (`pipeline.stages.download.RETRY`), which is not a final
    disposition: `Store.load_batch` keeps the item pending for a later batch, or gives it up."""
    return ItemResult(item=page.item, disposition=page.error_kind or "download_failed", detail=page.error)


def rejected_page(r: Rejected) -> ItemResult:
    return ItemResult(item=r.page.item, disposition=r.disposition, detail=r.detail)


def build(
    p: beam.Pipeline, items: Sequence[FeedItem], history: Sequence[tuple[DedupDoc, str]], opts: BatchOptions
):
    """Wire the graph on `p`; returns the PCollection of ItemResults."""
    items_pc = p | "ReadSpool" >> beam.Create(list(items))
    pages = items_pc | "DownloadPages" >> DownloadPages(
        opts.http, opts.download_workers, robots_opt_out=opts.robots_opt_out, honour_robots=opts.honour_robots,
        held_hosts=dict(opts.held_hosts),
    )
    return process_pages(p, pages, history, opts)


def process_pages(p: beam.Pipeline, pages, history: Sequence[tuple[DedupDoc, str]], opts: BatchOptions):
    """Pages -> ItemResults: everything after the download (the benchmark enters here)."""
    history_pc = p | "ReadHistory" >> beam.Create(list(history))
    ok, failed = pages | "SplitFailed" >> beam.Partition(lambda pg, _: 1 if pg.error else 0, 2)
    extracted = ok | "ExtractArticles" >> ExtractArticles(opts.min_text_chars, opts.now)
    folded = extracted.articles | "FoldStories" >> FoldStories(opts.dedup, history_pc, opts.warm_stories)
    matched = folded | "MatchTopics" >> MatchTopics(opts.topics_dir)
    return (
        matched,
        failed | "FailedDownloads" >> beam.Map(failed_download),
        extracted.rejected | "RejectedPages" >> beam.Map(rejected_page),
    ) | "AllResults" >> beam.Flatten()


def make_pipeline(runner: str, beam_args: Sequence[str] = ()) -> beam.Pipeline:
    """A Pipeline on the named runner. "FnApiRunner" is Beam's in-process portable runner."""
    options = PipelineOptions(list(beam_args))
    if runner == "FnApiRunner":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return beam.Pipeline(runner=FnApiRunner(), options=options)
    return beam.Pipeline(runner=runner, options=options)


def run_batch(
    items: Sequence[FeedItem],
    history: Sequence[tuple[DedupDoc, str]],
    opts: BatchOptions,
    out_dir: str | Path,
    *,
    pages: Sequence[Page] | None = None,
) -> list[ItemResult]:
    """Run the pipeline to completion; returns the results read back from the shards.

    With `pages`, the download step is skipped and those pages are processed (benchmarks, replays
    of saved pages); otherwise `items` are downloaded.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = str(out_dir / "results")
    with make_pipeline(opts.runner, opts.beam_args) as p:
        if pages is None:
            results = build(p, items, history, opts)
        else:
            results = process_pages(p, p | "ReadPages" >> beam.Create(list(pages)), history, opts)
        (
            results
            | "ToJson" >> beam.Map(to_json)
            | "WriteShards" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
        )
    return read_shards(out_dir)


def read_shards(out_dir: str | Path) -> list[ItemResult]:
    results = []
    for path in sorted(glob.glob(os.path.join(str(out_dir), "results-*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    results.append(from_dict(ItemResult, json.loads(line)))
    return results
