"""Rungs 1-3, copies: same canonical URL, same normalised text, near copy (sketched containment).

What is kept per document is flat (pipeline/stories/columns.py): a 64-bit key of its canonical URL
and of its normalised text, its shingle count, and a *bottom-k sketch* of its shingles (the
`copy_sketch` smallest of its 24-bit shingle hashes, 3 bytes each). Its `copy_probes` smallest hashes are filed
in a posting array.

Candidates: a new text looks up its own sketch in those postings. A reprint trimmed to 60% keeps
each of its source's smallest hashes with probability 0.6, and each one it keeps is among its own
smallest, so it misses all 8 probes with probability 0.4**8 (a source looked up by its reprint is
found likewise); candidates are ranked by how many probes they share, the newest first.

Decision: the containment ``|A & B| / min(|A|, |B|)`` estimated from the two sketches: both are cut
at the smaller of their largest kept hashes, which leaves two uniform samples of the same part of
the hash range, and the estimate is their overlap over the smaller sample (exact when both texts
have no more than `copy_sketch` shingles).
"""

from __future__ import annotations

import numpy as np

from pipeline.stories.columns import ID_BYTES, Postings, RowStore, from_bytes24, to_bytes24
from pipeline.stories.settings import DedupSettings
from pipeline.stories.text import _Text, hash64

_LOW32 = 0xFFFFFFFF


def url_key(text: _Text) -> int:
    return hash64(text.url) if text.url else 0


def text_key(text: _Text) -> int:
    return int(text.text_hash[:16], 16) or 1 if text.text_hash else 0


def sketched_containment(a: np.ndarray, na: int, b: np.ndarray, nb: int, settings: DedupSettings) -> float:
    """Containment of two shingle sets of sizes `na`, `nb` from their bottom-k sketches `a`, `b`."""
    small, large = sorted((na, nb))
    if small < settings.min_shingles or small < settings.near_copy_min_ratio * large:
        return 0.0
    k = settings.copy_sketch
    cut = min(int(a[-1]) if na > k else _LOW32, int(b[-1]) if nb > k else _LOW32)
    a, b = a[: np.searchsorted(a, cut, side="right")], b[: np.searchsorted(b, cut, side="right")]
    least = min(len(a), len(b))
    if not least:
        return 0.0
    return len(np.intersect1d(a, b, assume_unique=True)) / least


class _CopyIndex:
    """Same URL, same normalised text, near copy: the article itself, whatever its wrapping."""

    def __init__(self, settings: DedupSettings) -> None:
        self.settings = settings
        self._rows = RowStore(
            {"url": (np.uint64, 1), "text": (np.uint64, 1), "shingles": (np.int32, 1), "sketch": (np.uint16, 1)},
            {"sketch": np.uint8},
        )
        self._urls = Postings()
        self._texts = Postings()
        self._probes = Postings()
        self._keys: dict[int, int] = {}   # for an index of its own (observe's probe): caller key -> row key

    def __len__(self) -> int:
        return len(self._rows)

    def _alive(self, keys: np.ndarray) -> np.ndarray:
        return self._rows.is_alive(keys)

    def _exact(self, postings: Postings, column: str, value: int) -> int | None:
        keys = postings.get(value & _LOW32)
        if not len(keys):
            return None
        keys = keys[self._rows.is_alive(keys)]
        keys = keys[self._rows.col(column)[keys - self._rows.base] == np.uint64(value)]
        return int(keys.min()) if len(keys) else None

    def find(self, text: _Text) -> tuple[str, int, float] | None:
        """(link, key of the document copied, score), or None."""
        for postings, column, value in ((self._urls, "url", url_key(text)), (self._texts, "text", text_key(text))):
            if value:
                key = self._exact(postings, column, value)
                if key is not None:
                    return ("exact_copy", key, 1.0)
        s = self.settings
        shingles = text.shingles
        if len(shingles) < s.min_shingles or not len(self._rows):
            return None
        sketch = shingles[: s.copy_sketch]
        keys, _ = self._probes.get_many(sketch, newest=s.max_term_docs)
        if not len(keys):
            return None
        keys = keys[self._alive(keys)]
        keys, hits = np.unique(keys, return_counts=True)
        # Most probes shared first, then the newest: a reprint follows its original.
        ranked = keys[np.lexsort((-keys, -hits))][: s.max_copy_candidates]
        rows = self._rows
        best: tuple[float, int] | None = None
        for key in ranked.tolist():
            n = int(rows.get("shingles", key))
            other = from_bytes24(rows.chunk("sketch", key, ID_BYTES * int(rows.get("sketch", key))))
            score = sketched_containment(sketch, len(shingles), other, n, s)
            if best is None or score > best[0] or (score == best[0] and key < best[1]):
                best = (score, key)
        if best is None or best[0] < s.near_copy_containment:
            return None
        return ("near_copy", best[1], best[0])

    def insert(self, key: int, text: _Text) -> None:
        """Index `text` under `key` (keys must come in increasing order, without gaps)."""
        s = self.settings
        sketch = text.shingles[: s.copy_sketch]
        url, txt = url_key(text), text_key(text)
        got = self._rows.append(
            {"url": url, "text": txt, "shingles": len(text.shingles), "sketch": len(sketch)}, {"sketch": to_bytes24(sketch)}
        )
        assert got == key, (got, key)
        if url:
            self._urls.add([url & _LOW32], key, self._alive)
        if txt:
            self._texts.add([txt & _LOW32], key, self._alive)
        if len(text.shingles) >= s.min_shingles:
            self._probes.add(sketch[: s.copy_probes], key, self._alive)

    def remove(self, key: int) -> None:
        if self._rows.has(key):
            self._rows.kill(key)

    def live(self) -> set[int]:
        return set(self._rows.live_keys().tolist())

    def filed(self) -> set[int]:
        return self._urls.all_keys() | self._texts.all_keys() | self._probes.all_keys()
