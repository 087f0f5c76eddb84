"""Rungs 1-3, copies: same canonical URL, same normalised text, near copy (MinHash LSH + containment)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from datasketch import MinHashLSH

from pipeline.stories.settings import DedupSettings
from pipeline.stories.text import _MIX_MULTIPLIER, _Text

# ---------------------------------------------------------------------------------------------
# Rungs 1-3: copies.

_MERSENNE_PRIME = np.uint64((1 << 61) - 1)
_MAX_HASH32 = np.uint64((1 << 32) - 1)


class _MinHashLSH:
    """Banded MinHash over 32-bit shingle hashes, kept lean: one dict entry per (document, band).

    The permutations are drawn once from a fixed seed; the bands and rows per band are those
    datasketch picks for the threshold (false positives and negatives weighed equally). A band
    is filed under a 64-bit digest of its rows and its number; a digest collision only proposes
    a candidate, which the exact containment then judges.
    """

    def __init__(self, threshold: float, num_perm: int) -> None:
        probe = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.bands, self.rows = probe.b, probe.r
        rng = np.random.RandomState(1)
        self._a = rng.randint(1, int(_MERSENNE_PRIME), num_perm, dtype=np.uint64)
        self._b = rng.randint(0, int(_MERSENNE_PRIME), num_perm, dtype=np.uint64)
        self._buckets: dict[int, int | list[int]] = {}
        self._keys: dict[int, np.ndarray] = {}   # document key -> its band digests

    def __len__(self) -> int:
        return len(self._keys)

    def digests(self, shingles: np.ndarray) -> np.ndarray:
        values = shingles.astype(np.uint64)[:, None]
        signature = (((values * self._a + self._b) % _MERSENNE_PRIME) & _MAX_HASH32).min(axis=0)
        width = self.bands * self.rows
        rows = signature[:width].reshape(self.bands, self.rows)
        digest = np.arange(self.bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        for column in range(self.rows):
            digest = (digest ^ rows[:, column]) * _MIX_MULTIPLIER
            digest ^= digest >> np.uint64(29)
        return digest.astype(np.int64)

    def query(self, digests: np.ndarray) -> set[int]:
        found: set[int] = set()
        buckets = self._buckets
        for digest in digests.tolist():
            members = buckets.get(digest)
            if members is None:
                continue
            if isinstance(members, int):
                found.add(members)
            else:
                found.update(members)
        return found

    def insert(self, key: int, digests: np.ndarray) -> None:
        self._keys[key] = digests
        buckets = self._buckets
        for digest in digests.tolist():
            members = buckets.get(digest)
            if members is None:
                buckets[digest] = key
            elif isinstance(members, int):
                buckets[digest] = [members, key]
            else:
                members.append(key)

    def remove(self, key: int) -> None:
        digests = self._keys.pop(key, None)
        if digests is None:
            return
        buckets = self._buckets
        for digest in digests.tolist():
            members = buckets.get(digest)
            if members is None:
                continue
            if isinstance(members, int):
                if members == key:
                    del buckets[digest]
            else:
                if key in members:
                    members.remove(key)
                if len(members) == 1:
                    buckets[digest] = members[0]


@dataclass(frozen=True, eq=False)
class _CopyEntry:
    """What the copy rungs keep of an indexed document."""

    shingles: np.ndarray
    url: str
    text_hash: str


class _CopyIndex:
    """Same URL, same normalised text, near copy: the article itself, whatever its wrapping."""

    def __init__(self, settings: DedupSettings) -> None:
        self.settings = settings
        self._by_url: dict[str, int] = {}
        self._by_hash: dict[str, int] = {}
        self._entries: dict[int, _CopyEntry] = {}
        self._lsh = _MinHashLSH(settings.lsh_threshold, settings.num_perm)
        self._last: tuple[_Text, np.ndarray] | None = None   # find() then insert() of one text

    def _digests(self, text: _Text) -> np.ndarray:
        if self._last is None or self._last[0] is not text:
            self._last = (text, self._lsh.digests(text.shingles))
        return self._last[1]

    def find(self, text: _Text) -> tuple[str, int, float] | None:
        """(link, key of the document copied, score), or None."""
        for table, value in ((self._by_url, text.url), (self._by_hash, text.text_hash)):
            if value and value in table:
                return ("exact_copy", table[value], 1.0)
        if len(text.shingles) < self.settings.min_shingles or not self._entries:
            return None
        best: tuple[float, int] | None = None
        candidates = sorted(self._lsh.query(self._digests(text)), reverse=True)
        # The newest first, at most max_copy_candidates of them: a reprint follows its original.
        for key in candidates[: self.settings.max_copy_candidates]:
            score = self._containment(text.shingles, self._entries[key].shingles)
            if best is None or score > best[0] or (score == best[0] and key < best[1]):
                best = (score, key)
        if best is None or best[0] < self.settings.near_copy_containment:
            return None
        return ("near_copy", best[1], best[0])

    def insert(self, key: int, text: _Text) -> None:
        self._entries[key] = _CopyEntry(text.shingles, text.url, text.text_hash)
        if text.url:
            self._by_url.setdefault(text.url, key)
        if text.text_hash:
            self._by_hash.setdefault(text.text_hash, key)
        if len(text.shingles):
            self._lsh.insert(key, self._digests(text))
        self._last = None

    def remove(self, key: int) -> None:
        entry = self._entries.pop(key)
        for table, value in ((self._by_url, entry.url), (self._by_hash, entry.text_hash)):
            if value and table.get(value) == key:
                del table[value]
        self._lsh.remove(key)

    def _containment(self, a: np.ndarray, b: np.ndarray) -> float:
        small, large = sorted((len(a), len(b)))
        if small < self.settings.min_shingles or small < self.settings.near_copy_min_ratio * large:
            return 0.0
        return len(np.intersect1d(a, b, assume_unique=True)) / small
