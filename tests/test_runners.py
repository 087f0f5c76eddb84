"""One graph, every runner: the same batch on FnApiRunner and on Beam's DaskRunner gives the same results.

The DaskRunner runs against a real dask.distributed cluster on loopback (2 worker processes), so
every stage is pickled, shipped to another process and run there; the pages come from the demo's
HTTP server on 127.0.0.1, which the workers fetch themselves. The batch has what makes a graph
branch: a failed download (404), a page too short to be an article, syndicated copies that fold
into one story, and topic matches. The history side input carries an earlier story, so the fold
depends on it. Equality is of the whole ItemResult records (JSON), item by item.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pipeline.fetch.http import HttpSettings
from pipeline.fetch.parse import parse_feed
from pipeline.flow import BatchOptions, run_batch
from pipeline.models import FeedItem, to_json
from pipeline.stages.stories import as_dedup_doc

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _items(server) -> list[FeedItem]:
    items: list[FeedItem] = []
    for feed in server.spec["feeds"]:
        body = httpx.get(f"{server.base}/feeds/{feed['id']}.xml", timeout=30).content
        items += parse_feed(feed["id"], body, base_url=server.base, headers=None, seen_at=NOW).items
    # Two that cannot become articles: a page that is not there, and one without main text.
    items.append(FeedItem("missing", "extra", "g-missing", f"{server.base}/nowhere/gone.html", "Gone", "", NOW, NOW))
    items.append(FeedItem("feedxml", "extra", "g-feed", f"{server.base}/feeds/{server.spec['feeds'][0]['id']}.xml",
                          "Not a page", "", NOW, NOW))
    return items


def _opts(runner: str, beam_args: tuple[str, ...] = (), extract_processes: int = 1) -> BatchOptions:
    return BatchOptions(
        topics_dir=str(ROOT / "seeds" / "topics"), now=NOW, runner=runner, beam_args=beam_args,
        extract_processes=extract_processes,
        http=HttpSettings(allow_private_addresses=True, total_timeout=60), honour_robots=False,
    )


def _records(results) -> list[dict]:
    return [json.loads(to_json(r)) for r in results]


def test_the_same_batch_gives_identical_results_on_fnapi_and_on_a_dask_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    from pipeline.demo import DemoServer

    with DemoServer() as server:
        items = _items(server)
        # A first batch (in process) gives the history the second batch folds against.
        first = run_batch(items[:3], [], _opts("FnApiRunner"), tmp_path / "first")
        history = [(as_dedup_doc(r.article), r.assignment.story_id) for r in first if r.article and r.assignment]
        assert history
        rest = items[3:]

        local = run_batch(rest, history, _opts("FnApiRunner"), tmp_path / "fnapi")
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster, distributed.Client(cluster) as client:
            dask = run_batch(rest, history, _opts("DaskRunner", (f"--dask_client_address={cluster.scheduler_address}",)),
                             tmp_path / "dask")
            # Both workers took part, so the stages really crossed processes.
            assert len(client.scheduler_info()["workers"]) == 2

    # Every item leaves exactly once, with each kind of outcome present.
    assert sorted(r.item.item_id for r in local) == sorted(i.item_id for i in rest)
    kinds = {r.disposition for r in local}
    assert "stored" in kinds and "download_failed" in kinds or "refused" in kinds, kinds
    assert len(kinds) >= 3, kinds
    assert any(r.assignment and r.assignment.link != "original" for r in local), "no copy folded into a story"
    assert any(r.matches for r in local), "no topic matched"
    assert any(r.assignment and r.assignment.story_id in {s for _, s in history} for r in local), \
        "nothing folded into the history's stories"
    a, b = _records(dask), _records(local)
    assert [(r["item"]["item_id"], r["disposition"]) for r in a] == [(r["item"]["item_id"], r["disposition"]) for r in b]
    assert a == b
    # No shard left half-written: every file in the output folders is a finished shard.
    for out in ("fnapi", "dask"):
        assert all(p.name.endswith(".jsonl") for p in (tmp_path / out).iterdir())


def test_extraction_on_two_worker_processes_gives_the_same_results_as_in_process(tmp_path: Path) -> None:
    """`extract_processes: 2` moves extraction to worker processes kept between batches; the
    batch's ItemResults must not change, and the workers must be other processes."""
    import os

    from pipeline.demo import DemoServer
    from pipeline.stages import pool

    with DemoServer() as server:
        items = _items(server)
        first = run_batch(items[:3], [], _opts("FnApiRunner"), tmp_path / "first")
        history = [(as_dedup_doc(r.article), r.assignment.story_id) for r in first if r.article and r.assignment]
        rest = items[3:]
        inline = run_batch(rest, history, _opts("FnApiRunner"), tmp_path / "inline")
        pooled = run_batch(rest, history, _opts("FnApiRunner", extract_processes=2), tmp_path / "pooled")
        again = run_batch(rest, history, _opts("FnApiRunner", extract_processes=2), tmp_path / "again")

    kinds = {r.disposition for r in inline}
    assert "stored" in kinds and len(kinds) >= 2, kinds
    assert _records(pooled) == _records(inline)
    assert _records(again) == _records(inline)  # the second batch reuses the same workers
    workers = pool._pools[2]._processes
    assert len(workers) == 2 and os.getpid() not in workers
    assert all(p.is_alive() for p in workers.values())
