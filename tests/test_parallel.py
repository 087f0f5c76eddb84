"""pipeline.parallel: independent jobs on worker processes, in order, and a pool that cannot run
falls back to this process instead of failing the evaluation."""

from __future__ import annotations

import multiprocessing
import os

from pipeline.parallel import in_processes


def where(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def dies_in_a_worker(n: int) -> int:
    if multiprocessing.parent_process() is not None:
        os._exit(3)  # a worker that cannot run: the pool breaks
    return n + 1


def test_results_come_in_job_order_from_worker_processes() -> None:
    got = list(in_processes(where, [(n,) for n in range(6)], processes=2))
    assert [square for square, _ in got] == [n * n for n in range(6)]
    assert os.getpid() not in {pid for _, pid in got}  # computed elsewhere


def test_one_process_runs_the_jobs_here() -> None:
    got = list(in_processes(where, [(n,) for n in range(3)], processes=1))
    assert [pid for _, pid in got] == [os.getpid()] * 3


def test_a_broken_pool_runs_the_rest_here() -> None:
    assert list(in_processes(dies_in_a_worker, [(n,) for n in range(4)], processes=2)) == [1, 2, 3, 4]
