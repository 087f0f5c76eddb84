"""Flat numpy containers of the story index: no Python object per document, term or posting.

* `Grow`: a 1-D numpy array that grows by appends (amortised, 1.25x), the store of every column.
* `KeyTable`: 32-bit term (or line) hashes -> counts (and optionally stored-document references
  and a background document frequency), as sorted arrays plus a small dict of recent keys, merged
  into the arrays when it grows past a fraction of them (a log-structured merge of two levels).
* `Postings`: (32-bit group, 32-bit document key) pairs packed in one sorted uint64 array, plus a
  small dict of recent entries: every document filed under a group is one binary-searched slice.
  Entries of evicted documents are dropped lazily, when the dict is merged into the array.

Everything pickles as a handful of arrays (pipeline/stories/persist.py), so saving and loading the
index is a copy of its buffers, not a walk over millions of objects.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


class Grow:
    """An append-only numpy array with spare capacity; `view()` is the filled part."""

    __slots__ = ("_data", "n")

    def __init__(self, dtype, capacity: int = 256) -> None:
        self._data = np.zeros(max(16, capacity), dtype=dtype)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def view(self) -> np.ndarray:
        return self._data[: self.n]

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        if need > len(self._data):
            size = max(need, int(len(self._data) * 1.25) + 16)
            data = np.zeros(size, dtype=self._data.dtype)
            data[: self.n] = self._data[: self.n]
            self._data = data

    def append(self, value) -> None:
        self._reserve(1)
        self._data[self.n] = value
        self.n += 1

    def extend(self, values: np.ndarray) -> None:
        k = len(values)
        self._reserve(k)
        self._data[self.n : self.n + k] = values
        self.n += k

    def replace(self, values: np.ndarray) -> None:
        """Keep only `values` (a compaction): the spare capacity is given back."""
        self._data = np.array(values, dtype=self._data.dtype, copy=True)
        self.n = len(values)

    def __getstate__(self) -> tuple:
        return (self.view().copy(),)

    def __setstate__(self, state: tuple) -> None:
        self._data = state[0]
        self.n = len(self._data)


class KeyTable:
    """uint32 key -> df (int32) [, refs (int32), background (float32)], for distinct key arrays.

    `df` counts the documents of the corpus statistics holding the key; `refs` the stored
    documents holding it (a key they hold keeps its background while none is counted); the
    background is set when the key is first seen. A key with df and refs both 0 is dropped at the
    next merge.
    """

    def __init__(self, extra: bool = True) -> None:
        self.extra = extra
        self.keys = np.zeros(0, dtype=np.uint32)
        self.df = np.zeros(0, dtype=np.int32)
        self.refs = np.zeros(0, dtype=np.int32)
        self.bg = np.zeros(0, dtype=np.float32)
        self._pending: dict[int, list] = {}   # key -> [df, refs, bg]

    def __len__(self) -> int:
        return len(self.keys) + len(self._pending)

    def _find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = self.keys
        if not len(keys):
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        pos = np.searchsorted(keys, ids)
        np.minimum(pos, len(keys) - 1, out=pos)
        return pos, keys[pos] == ids

    def update(self, ids: np.ndarray, ddf: int, drefs: int = 0, bg: np.ndarray | None = None) -> None:
        """Add `ddf` / `drefs` at `ids` (distinct); keys not known are created with `bg` (if given)."""
        if not len(ids):
            return
        pos, found = self._find(ids)
        hit = pos[found]
        if ddf:
            self.df[hit] += ddf
        if drefs:
            self.refs[hit] += drefs
        if found.all():
            return
        pending = self._pending
        missing = np.flatnonzero(~found)
        for i, key in zip(missing.tolist(), ids[missing].tolist(), strict=True):
            entry = pending.get(key)
            if entry is None:
                pending[key] = [ddf, drefs, 0.0 if bg is None else float(bg[i])]
            else:
                entry[0] += ddf
                entry[1] += drefs
        if len(pending) > max(4096, len(self.keys) // 16):
            self.merge()

    def get(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(df, background) of each of `ids` (0 for unknown keys), as float64."""
        df = np.zeros(len(ids), dtype=np.float64)
        bg = np.zeros(len(ids), dtype=np.float64)
        if not len(ids):
            return df, bg
        pos, found = self._find(ids)
        df[found] = self.df[pos[found]]
        if self.extra:
            bg[found] = self.bg[pos[found]]
        if not found.all() and self._pending:
            pending = self._pending
            for i in np.flatnonzero(~found).tolist():
                entry = pending.get(int(ids[i]))
                if entry is not None:
                    df[i], bg[i] = entry[0], entry[2]
        return df, bg

    def total_df(self) -> int:
        return int(self.df.sum()) + sum(e[0] for e in self._pending.values())

    def live_keys(self) -> set[int]:
        live = (self.df > 0) | (self.refs > 0)
        out = set(self.keys[live].tolist())
        out.update(k for k, e in self._pending.items() if e[0] > 0 or e[1] > 0)
        return out

    def negative(self) -> bool:
        return bool((self.df < 0).any() or (self.refs < 0).any() or any(e[0] < 0 or e[1] < 0 for e in self._pending.values()))

    def merge(self) -> None:
        """Fold the recent keys into the sorted arrays and drop the dead keys."""
        if self._pending:
            items = sorted(self._pending.items())
            new_keys = np.fromiter((k for k, _ in items), dtype=np.uint32, count=len(items))
            values = np.array([e for _, e in items], dtype=np.float64).reshape(-1, 3)
            keys = np.concatenate((self.keys, new_keys))
            df = np.concatenate((self.df, values[:, 0].astype(np.int32)))
            refs = np.concatenate((self.refs, values[:, 1].astype(np.int32)))
            bg = np.concatenate((self.bg, values[:, 2].astype(np.float32)))
            order = np.argsort(keys, kind="stable")
            keys, df, refs, bg = keys[order], df[order], refs[order], bg[order]
            self._pending = {}
        else:
            keys, df, refs, bg = self.keys, self.df, self.refs, self.bg
        live = (df > 0) | (refs > 0)
        self.keys, self.df, self.refs, self.bg = keys[live], df[live], refs[live], bg[live]

    def __getstate__(self) -> dict:
        self.merge()
        state = {"extra": self.extra, "keys": self.keys, "df": self.df}
        if self.extra:
            state.update(refs=self.refs, bg=self.bg)
        return state

    def __setstate__(self, state: dict) -> None:
        self.extra = state["extra"]
        self.keys, self.df = state["keys"], state["df"]
        self.refs = state.get("refs", np.zeros(0, dtype=np.int32))
        self.bg = state.get("bg", np.zeros(0, dtype=np.float32))
        self._pending = {}


class Postings:
    """Documents filed under 32-bit groups: one sorted uint64 array of (group << 32 | key).

    `alive(keys) -> bool mask` tells which document keys are still indexed; the entries of the
    others are skipped by `get` and dropped by the next merge.
    """

    def __init__(self) -> None:
        self.packed = np.zeros(0, dtype=np.uint64)
        self._pending: dict[int, list[int]] = {}
        self._pending_n = 0

    def __len__(self) -> int:
        return len(self.packed) + self._pending_n

    def add(self, groups: np.ndarray | list[int], key: int, alive: Callable[[np.ndarray], np.ndarray]) -> None:
        pending = self._pending
        for g in (groups.tolist() if isinstance(groups, np.ndarray) else groups):
            got = pending.get(g)
            if got is None:
                pending[g] = [key]
            else:
                got.append(key)
            self._pending_n += 1
        if self._pending_n > max(4096, len(self.packed) // 32):
            self.merge(alive)

    def get(self, group: int, newest: int | None = None) -> np.ndarray:
        """Keys filed under `group` (live or not), oldest first; with `newest`, the last ones only."""
        g = np.uint64(group) << _SHIFT
        packed = self.packed
        lo = int(np.searchsorted(packed, g))
        hi = int(np.searchsorted(packed, g | _LOW32, side="right"))
        keys = (packed[lo:hi] & _LOW32).astype(np.int64)
        recent = self._pending.get(group)
        if recent:
            keys = np.concatenate((keys, np.array(recent, dtype=np.int64)))
        if newest is not None and len(keys) > newest:
            keys = keys[-newest:]
        return keys

    def get_many(self, groups: np.ndarray, newest: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, index of their group in `groups`) for each group, at most the `newest` per group."""
        g = groups.astype(np.uint64) << _SHIFT
        packed = self.packed
        lo = np.searchsorted(packed, g)
        hi = np.searchsorted(packed, g | _LOW32, side="right")
        lo = np.maximum(lo, hi - newest)
        keys: list[np.ndarray] = []
        which: list[np.ndarray] = []
        pending = self._pending
        for n, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
            recent = pending.get(int(groups[n])) if pending else None
            if b > a:
                got = (packed[a:b] & _LOW32).astype(np.int64)
                if recent:
                    got = np.concatenate((got, np.array(recent, dtype=np.int64)))[-newest:]
            elif recent:
                got = np.array(recent[-newest:], dtype=np.int64)
            else:
                continue
            keys.append(got)
            which.append(np.full(len(got), n, dtype=np.int64))
        if not keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(keys), np.concatenate(which)

    def merge(self, alive: Callable[[np.ndarray], np.ndarray]) -> None:
        if self._pending:
            new = np.fromiter(
                ((g << 32) | k for g, ks in self._pending.items() for k in ks), dtype=np.uint64, count=self._pending_n
            )
            packed = np.concatenate((self.packed, new))
            packed.sort()
            self._pending = {}
            self._pending_n = 0
        else:
            packed = self.packed
        if len(packed):
            packed = packed[alive((packed & _LOW32).astype(np.int64))]
        self.packed = packed

    def all_keys(self) -> set[int]:
        out = set((self.packed & _LOW32).tolist())
        for ks in self._pending.values():
            out.update(ks)
        return out

    def __getstate__(self) -> dict:
        groups = np.fromiter((g for g, ks in self._pending.items() for _ in ks), dtype=np.uint64, count=self._pending_n)
        keys = np.fromiter((k for ks in self._pending.values() for k in ks), dtype=np.uint64, count=self._pending_n)
        return {"packed": self.packed, "pending": (groups << _SHIFT) | keys}

    def __setstate__(self, state: dict) -> None:
        self.packed = state["packed"]
        self._pending = {}
        self._pending_n = 0
        for p in state["pending"].tolist():
            self._pending.setdefault(p >> 32, []).append(p & 0xFFFFFFFF)
            self._pending_n += 1


class RowStore:
    """Per-document columns indexed by key - `base` (keys are handed out in order), and CSR buffers.

    `columns`: name -> (dtype, width); a column of width w holds w values per row. `buffers`: name ->
    dtype of a variable-length buffer, each row's part found by its start (int64) and a length the
    caller keeps in a column. A removed row is marked dead; when the dead rows at the front are
    more than half of the rows, they are cut off (rows and buffers shift, keys stay).
    """

    def __init__(self, columns: dict[str, tuple], buffers: dict[str, object]) -> None:
        self.base = 0
        self.live = 0
        self.alive = Grow(bool)
        self.widths = {name: w for name, (_, w) in columns.items()}
        self.cols = {name: Grow(dtype) for name, (dtype, _) in columns.items()}
        self.bufs = {name: Grow(dtype) for name, dtype in buffers.items()}
        self.starts = {name: Grow(np.int64) for name in buffers}
        self.front = 0   # no live row has a key below this

    def __len__(self) -> int:
        return self.live

    @property
    def next_key(self) -> int:
        return self.base + len(self.alive)

    def append(self, values: dict, chunks: dict[str, np.ndarray]) -> int:
        key = self.next_key
        self.alive.append(True)
        for name, col in self.cols.items():
            v = values[name]
            if self.widths[name] == 1:
                col.append(v)
            else:
                col.extend(np.asarray(v))
        for name, buf in self.bufs.items():
            self.starts[name].append(len(buf))
            buf.extend(chunks[name])
        self.live += 1
        return key

    def col(self, name: str) -> np.ndarray:
        view = self.cols[name].view()
        w = self.widths[name]
        return view if w == 1 else view.reshape(-1, w)

    def get(self, name: str, key: int):
        w = self.widths[name]
        r = key - self.base
        return self.cols[name].view()[r] if w == 1 else self.cols[name].view()[r * w : (r + 1) * w]

    def chunk(self, name: str, key: int, length: int) -> np.ndarray:
        start = int(self.starts[name].view()[key - self.base])
        return self.bufs[name].view()[start : start + length]

    def is_alive(self, keys: np.ndarray) -> np.ndarray:
        rows = keys - self.base
        ok = (rows >= 0) & (rows < len(self.alive))
        out = np.zeros(len(keys), dtype=bool)
        out[ok] = self.alive.view()[rows[ok]]
        return out

    def has(self, key: int) -> bool:
        r = key - self.base
        return 0 <= r < len(self.alive) and bool(self.alive.view()[r])

    def live_keys(self) -> np.ndarray:
        return np.flatnonzero(self.alive.view()) + self.base

    def kill(self, key: int) -> None:
        self.alive.view()[key - self.base] = False
        self.live -= 1
        alive = self.alive.view()
        r = max(self.front - self.base, 0)
        while r < len(alive) and not alive[r]:
            r += 1
        self.front = self.base + r
        cut = self.front - self.base
        if cut >= 1024 and 2 * cut >= len(alive):
            self._cut(cut)

    def _cut(self, k: int) -> None:
        self.alive.replace(self.alive.view()[k:])
        for name, col in self.cols.items():
            col.replace(col.view()[k * self.widths[name] :])
        for name, buf in self.bufs.items():
            starts = self.starts[name].view()
            offset = int(starts[k]) if k < len(starts) else len(buf)
            buf.replace(buf.view()[offset:])
            self.starts[name].replace(starts[k:] - offset)
        self.base += k
