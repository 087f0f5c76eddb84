"""Which item, article and story ids the store holds, answered from memory instead of a scan.

DuckLake has no index: `WHERE item_id IN (...)` reads the whole key column, 3.5 s at 10M items,
and the daemon asked it once per parsed feed and several times per batch. The writer keeps,
per key column, the 64-bit hashes of every committed key (the first 8 bytes of its md5): a
sorted numpy array (8 bytes a key, 80 MB at 10M keys) and a small set of the hashes added since
the array was last rebuilt. A probe costs microseconds per key whatever the store size.

It is loaded from the store on first use and kept in step with commits: `Store.transaction`
collects the keys a transaction writes and adds them only once its COMMIT has succeeded, so a
rolled-back or failed transaction leaves the set as it was. Keys are never deleted from these
tables, so the set only grows.

Exactness: a key whose hash is absent is certainly new. A key whose hash is present is taken as
known; a new key shares its hash with one of n stored keys with probability about n / 2^64 (5e-13
per new key at 10M keys, about 3e-6 over a year that grows the store from 0 to 10M). Item ids
themselves are 80-bit hashes, and story ids 48-bit ones, so the ids collide no less often than
their hashes here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable

import numpy as np

# (table, key column) pairs kept in memory. Only tables written through Store methods that report
# their new keys (record_polls, load_batch); the small alert and dead-letter tables are probed.
INDEXED = (("items", "item_id"), ("articles", "article_id"), ("stories", "story_id"))


def key_hash(key: str) -> int:
    """DuckDB's md5_number_upper(key): the first 8 bytes of the md5 digest, little-endian."""
    return int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "little")


def hash_sql(column: str) -> str:
    """The same hash computed by DuckDB (used to load a column in bulk)."""
    return f"md5_number_upper({column})"


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique without its cost: numpy 2.4's took 21 s of CPU for 10M uint64, sort and mask 0.2 s."""
    a = np.sort(a)
    if len(a) < 2:
        return a
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


class KeySet:
    """The 64-bit hashes of one key column. Thread-safe: the poll workers read while a commit adds."""

    def __init__(self, hashes: np.ndarray) -> None:
        self._base = _sorted_unique(np.asarray(hashes, dtype=np.uint64))
        self._recent: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._base) + len(self._recent)

    @property
    def nbytes(self) -> int:
        return int(self._base.nbytes) + 80 * len(self._recent)

    def known(self, keys: Iterable[str]) -> set[str]:
        """The keys of `keys` whose hash is in the set."""
        keys = list(dict.fromkeys(k for k in keys if k))
        if not keys:
            return set()
        hashes = [key_hash(k) for k in keys]
        arr = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
        with self._lock:
            base, recent = self._base, self._recent
            if len(base):
                pos = np.searchsorted(base, arr)
                hit = base[np.minimum(pos, len(base) - 1)] == arr
            else:
                hit = np.zeros(len(arr), dtype=bool)
            return {k for k, h, b in zip(keys, hashes, hit.tolist(), strict=True) if b or h in recent}

    def add(self, keys: Iterable[str]) -> None:
        hashes = {key_hash(k) for k in keys if k}
        if not hashes:
            return
        with self._lock:
            self._recent |= hashes
            if len(self._recent) > max(50_000, len(self._base) // 8):
                self._fold()

    def _fold(self) -> None:
        """Move the recent hashes into the sorted array (one O(n) insert, not a re-sort)."""
        new = _sorted_unique(np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent)))
        if len(self._base):
            pos = np.searchsorted(self._base, new)
            fresh = self._base[np.minimum(pos, len(self._base) - 1)] != new
            new, pos = new[fresh], pos[fresh]
            self._base = np.insert(self._base, pos, new)
        else:
            self._base = new
        self._recent = set()
