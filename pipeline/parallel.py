"""Independent jobs on worker processes, for the story-folding cross-validation of `newsmon eval
dedup` and `python -m pipeline.stories.train`: each held-out fold is a job, and the figures do not
depend on how many run at once. (The topic cross-validations are too cheap per fold: on two
processes `newsmon eval topics` took 22 s against 20 s in one, spawning and warming up the workers
cost more than they share.)

Contract
--------
consumes  a picklable top-level function and a list of argument tuples;
emits     the results in job order, each as soon as it and those before it are done;
rejects   nothing: a pool that cannot start (a program read from stdin cannot be imported again by
          a spawned process) runs the remaining jobs here, one after another.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any


def in_processes(fn: Callable[..., Any], jobs: list[tuple], processes: int | None = None) -> Iterator[Any]:
    """`fn(*job)` for every job, in order: on up to `processes` worker processes (default one per
    core; fresh ones, "spawn", so nothing of this process's threads or open stores is inherited)."""
    processes = min(len(jobs), processes or os.cpu_count() or 1)
    done = 0
    if processes > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
                for result in pool.map(fn, *zip(*jobs, strict=True)):
                    done += 1
                    yield result
        except BrokenProcessPool:
            pass
    for job in jobs[done:]:
        yield fn(*job)
