"""Worker processes kept for the life of this process, for the stages whose work is element-wise
and CPU-bound (extraction), so that the in-process runner can use more than one core.

Beam's own multi-process modes start fresh worker processes for every pipeline run: each one
imports Beam, trafilatura and the stages again, which for a batch of a few hundred pages costs more
than the second core gives (bench/bench_extraction.py measures it). A `ProcessPoolExecutor` made
once and reused batch after batch starts its workers once. Workers come from a forkserver (started
before any of this process's threads touch them), not fork: this process runs gRPC and download
threads, which a forked child must not inherit.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor

_lock = threading.Lock()
_pools: dict[int, ProcessPoolExecutor] = {}


def shared_pool(processes: int) -> ProcessPoolExecutor:
    """The pool of `processes` workers held by this process (made on first use)."""
    with _lock:
        pool = _pools.get(processes)
        if pool is None:
            ctx = multiprocessing.get_context("forkserver")
            # Workers import the extraction stage once, in the server, and fork from there warm.
            ctx.set_forkserver_preload(["pipeline.stages.extract", "pipeline.stages.prepare"])
            pool = _pools[processes] = ProcessPoolExecutor(processes, mp_context=ctx)
        return pool


def shutdown_pools() -> None:
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pools)
