"""The batch pipeline: pending feed items -> ItemResult shards on disk.

    Items --DownloadPages--> Pages --ExtractArticles--> (item, Article) --FoldStories(history)-->
    Folded --MatchTopics--> ItemResult --\
    failed downloads, rejected pages ----+--> JSON lines shards --> store.load_batch()

Only constructs that every runner handles alike: Map, Filter, ParDo, GroupByKey, Flatten and side
inputs. No tagged outputs or Partition (a branch is a Filter) and no WriteToText (the shards are
written by `WriteShards`, one file per bundle, renamed into place when the bundle finishes): Beam's
DaskRunner gets the first two wrong and leaves the third's temporary files unfinalised, and the
same graph must give the same results on FnApiRunner, on DaskRunner and on Flink or Dataflow.

Every item leaves the pipeline as exactly one ItemResult (with its disposition). The pipeline
never touches the database: history comes in as a side input (or, in process, as an index kept
between batches), results go out as files, and the caller loads them in one transaction. So the
same graph runs in process (FnApiRunner, the default: no download, no service) or on any Beam
runner chosen by name and options.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import uuid
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
from pipeline.stages.prepare import prepare_article
from pipeline.stages.stories import FoldStories


@dataclass(frozen=True)
class BatchOptions:
    """The slice of configuration the pipeline needs; everything here is picklable."""

    topics_dir: str
    now: datetime
    http: HttpSettings = field(default_factory=HttpSettings)
    download_workers: int = 8
    min_text_chars: int = 200
    extract_processes: int = 1  # > 1: extraction on that many worker processes (FnApiRunner only)
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


def _fetched(page: Page) -> bool:
    return not page.error


def _not_fetched(page: Page) -> bool:
    return bool(page.error)


class _WriteShardFn(beam.DoFn):
    """ItemResults -> one JSON lines file per bundle, `<prefix>-<uuid>.jsonl`.

    The file is written under a temporary name and renamed when the bundle finishes, so a reader
    never sees half a shard, and a bundle that a runner retries writes a new file rather than
    appending to an old one (`read_shards` keeps one result per item). Beam's FileSystems API is
    used, so the prefix may be on any file system the runner has (a local or shared directory,
    gs://, s3://)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._fh = None
        self._tmp = self._final = ""

    def start_bundle(self) -> None:
        self._fh = None

    def process(self, result: ItemResult):
        from apache_beam.io.filesystems import FileSystems

        if self._fh is None:
            name = uuid.uuid4().hex
            self._final = f"{self.prefix}-{name}.jsonl"
            self._tmp = f"{self.prefix}-{name}.jsonl.tmp"
            self._fh = FileSystems.create(self._tmp)
        self._fh.write(to_json(result).encode("utf-8") + b"\n")

    def finish_bundle(self) -> None:
        from apache_beam.io.filesystems import FileSystems

        if self._fh is not None:
            self._fh.close()
            FileSystems.rename([self._tmp], [self._final])
            self._fh = None


class WriteShards(beam.PTransform):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def expand(self, results):
        return results | "Write" >> beam.ParDo(_WriteShardFn(self.prefix))


def build(
    p: beam.Pipeline, items: Sequence[FeedItem], history: Sequence[tuple[DedupDoc, str]], opts: BatchOptions
):
    """Wire the graph on `p`; returns the PCollection of ItemResults."""
    items_pc = p | "ReadSpool" >> beam.Create(list(items))
    pages = items_pc | "DownloadPages" >> DownloadPages(
        opts.http, opts.download_workers, robots_opt_out=opts.robots_opt_out, honour_robots=opts.honour_robots,
        held_hosts=dict(opts.held_hosts),
        # about 4 x download_workers items per group, and at least 2 groups for 2 workers
        groups=max(2, -(-len(items) // max(1, 4 * opts.download_workers))),
    )
    return process_pages(p, pages, history, opts)


def process_pages(p: beam.Pipeline, pages, history: Sequence[tuple[DedupDoc, str]], opts: BatchOptions):
    """Pages -> ItemResults: everything after the download (the benchmark enters here)."""
    history_pc = p | "ReadHistory" >> beam.Create(list(history))
    ok = pages | "Fetched" >> beam.Filter(_fetched)
    failed = pages | "NotFetched" >> beam.Filter(_not_fetched)
    prepare = None
    if opts.extract_processes > 1:
        # The worker processes that extract also cut each article for the fold and match it
        # (pipeline.stages.prepare), so that little but the index look-ups is left serial.
        prepare = functools.partial(prepare_article, settings=opts.dedup, topics_dir=str(Path(opts.topics_dir).resolve()))
    extracted = ok | "ExtractArticles" >> ExtractArticles(opts.min_text_chars, opts.now, opts.extract_processes, prepare)
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
    if runner == "DaskRunner":  # needs dask[distributed]; --dask_client_address=tcp://host:8786 names the cluster
        from apache_beam.runners.dask.dask_runner import DaskRunner

        return beam.Pipeline(runner=DaskRunner(), options=options)
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
        results | "WriteShards" >> WriteShards(prefix)
    return read_shards(out_dir)


def read_shards(out_dir: str | Path) -> list[ItemResult]:
    """Every ItemResult in the finished shards, one per item (a retried bundle's copy is the same
    result), in item order so that runs on different runners compare equal."""
    by_item: dict[str, ItemResult] = {}
    for path in sorted(glob.glob(os.path.join(str(out_dir), "results-*.jsonl"))):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    r = from_dict(ItemResult, json.loads(line))
                    by_item[r.item.item_id] = r
    return [by_item[k] for k in sorted(by_item)]
