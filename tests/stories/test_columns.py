"""The flat containers of the story index against plain dicts doing the same updates."""

from __future__ import annotations

import random

import numpy as np

from pipeline.stories.columns import KeyTable, Postings


def _random_updates(seed: int, n: int = 400):
    rng = random.Random(seed)
    keys = [rng.randrange(2**32) for _ in range(60)]
    hot = keys[:3]   # these pass the one-byte df of a small table, and come back below it
    for _ in range(n):
        ids = sorted(set(rng.sample(keys, 10) + hot))
        yield np.array(ids, dtype=np.uint32), rng.choice((1, 1, 1, 2, -1)), rng.choice((0, 1))


def test_a_small_table_counts_past_a_byte_and_back_as_a_dict_does() -> None:
    table, truth = KeyTable(extra=False), {}
    for ids, ddf, _ in _random_updates(3):
        present = np.array([truth.get(k, 0) > 0 or k in truth for k in ids.tolist()])
        if ddf < 0:
            ids = ids[present]   # the index only takes from keys it counted
        table.update(ids, ddf)
        for k in ids.tolist():
            truth[k] = truth.get(k, 0) + ddf
    keys = np.array(sorted(truth), dtype=np.uint32)
    df, _ = table.get(keys)
    assert df.tolist() == [float(truth[k]) for k in keys.tolist()]
    assert max(truth.values()) > 255 and table.total_df() == sum(truth.values())
    # Whatever the levels hold, a journal replayed on a copy of the start gives the same counts.
    start = KeyTable.from_arrays(False, {k: v.copy() for k, v in table.main_arrays().items()})
    table.start_journal("x")
    for ids, ddf, _ in _random_updates(4, 200):
        table.update(ids, abs(ddf))
    start.apply(*table.journal_delta())
    assert np.array_equal(start.get(keys)[0], table.get(keys)[0])


def test_a_journal_delta_applied_to_a_saved_table_gives_its_counts_refs_and_backgrounds() -> None:
    table = KeyTable(extra=True)
    rng = random.Random(5)
    ids = np.array(sorted(rng.sample(range(2**32), 50)), dtype=np.uint32)
    table.update(ids, 1, 0, np.arange(50, dtype=np.float32))
    saved = KeyTable.from_arrays(True, {k: v.copy() for k, v in table.main_arrays().items()})
    table.start_journal("x")
    new = np.array(sorted(rng.sample(range(2**32), 30)), dtype=np.uint32)
    table.update(new, 0, 1, np.full(30, 7.0, dtype=np.float32))
    table.update(ids[:20], 0, 1)
    table.update(ids[10:30], -1, 0)
    saved.apply(*table.journal_delta())
    probe = np.concatenate((ids, new))
    assert all(np.array_equal(a, b) for a, b in zip(saved.get(probe), table.get(probe), strict=True))
    assert saved.live_keys() == table.live_keys()


def test_keys_filed_again_under_a_group_keep_its_keys_in_order() -> None:
    """`Postings.insert` (a merged story's members filed under the story they joined): the group
    lists its keys oldest first whether its older entries are merged or still pending."""
    def alive(keys: np.ndarray) -> np.ndarray:
        return np.ones(len(keys), dtype=bool)

    for merged_first in (False, True):
        p = Postings()
        for key in (1, 5, 9):
            p.add([7], key, alive)
        for key in (3, 6):
            p.add([8], key, alive)
        if merged_first:
            p.merge(alive)
        p.insert(7, [3, 6], alive)
        assert p.get(7).tolist() == [1, 3, 5, 6, 9]
        assert p.get(7, newest=2).tolist() == [6, 9]
        assert p.get(8).tolist() == [3, 6]
        keys, which = p.get_many(np.array([7], dtype=np.uint32), newest=3)
        assert keys.tolist() == [5, 6, 9] and which.tolist() == [0, 0, 0]
