"""A batch that crashes the pipeline must not block the spool: the daemon bisects the batch, gives
up the one item that still crashes alone (with a dead letter) and processes all the others. When
nothing succeeds at all (a broken pipeline, not a bad item), nothing is given up.

The crash is injected around the real `run_batch` (feeds, pages and store are real, on loopback):
no stage crashes on any page we have, which is the point of the stages' own error handling.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import config, daemon
from pipeline.daemon import Daemon
from pipeline.demo import DemoServer

real_run_batch = daemon.run_batch


def _daemon(tmp_path: Path, server: DemoServer) -> Daemon:
    sources = tmp_path / "sources.yaml"
    sources.write_text(server.sources_yaml(), encoding="utf-8")
    overrides = {"fetch.allow_private_addresses": True, "fetch.per_host_min_gap_seconds": 0}
    cfg = config.load(sources_path=sources, data_dir=tmp_path / "data", env={}, overrides=overrides)
    return Daemon(cfg, notifiers=[])


@pytest.mark.slow
def test_one_item_that_crashes_the_pipeline_is_given_up_and_the_rest_go_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DemoServer() as server:
        d = _daemon(tmp_path, server)
        try:
            d.poll(force=True)
            _, rows = d.store.query("SELECT item_id FROM items ORDER BY item_id")
            ids = [r[0] for r in rows]
            poison = ids[len(ids) // 2]
            sizes: list[int] = []

            def crashing(items, *args, **kwargs):  # type: ignore[no-untyped-def]
                sizes.append(len(items))
                if any(it.item_id == poison for it in items):
                    raise RuntimeError("a stage met something it cannot digest")
                return real_run_batch(items, *args, **kwargs)

            monkeypatch.setattr(daemon, "run_batch", crashing)
            _, batches, _ = d.run_once()
            _, disp = d.store.query("SELECT item_id, disposition, detail FROM items")
            dead = d.store.query("SELECT key, stage, reason FROM dead_letters")[1]
        finally:
            d.close()
    by_id = {r[0]: (r[1], r[2]) for r in disp}
    assert by_id[poison][0] == "extract_failed" and "crashed on this item alone" in by_id[poison][1]
    assert all(v[0] != "pending" for v in by_id.values())  # nothing left blocked in the spool
    assert sum(v[0] == "stored" for v in by_id.values()) >= 6
    assert [k for k, *_ in dead] == [poison]
    assert sizes[0] == len(ids) and len(sizes) <= 2 + 2 * len(ids).bit_length()  # bisection, not item by item


@pytest.mark.slow
def test_a_pipeline_that_fails_on_everything_gives_nothing_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with DemoServer() as server:
        d = _daemon(tmp_path, server)
        try:
            d.poll(force=True)

            def broken(items, *args, **kwargs):  # type: ignore[no-untyped-def]
                raise OSError("No space left on device")

            monkeypatch.setattr(daemon, "run_batch", broken)
            with pytest.raises(OSError):
                d.run_once()
            pending = d.store.scalar("SELECT count(*) FROM items WHERE disposition = 'pending'")
            dead = d.store.scalar("SELECT count(*) FROM dead_letters")
            total = d.store.scalar("SELECT count(*) FROM items")
        finally:
            d.close()
    assert pending == total and dead == 0
