"""Flat numpy containers of the story index: no Python object per document, term or posting.

* `to_bytes24` / `from_bytes24`: 24-bit values (term ids, shingle hashes) in 3 bytes each.
* `Grow`: a 1-D numpy array that grows by appends (amortised, 1.25x), the store of every column.
* `KeyTable`: term ids (24-bit) or line hashes (32-bit) -> counts (and optionally stored-document references
  and a background document frequency), as sorted arrays plus a small dict of recent keys, merged
  into the arrays when it grows past a fraction of them (a log-structured merge of two levels).
* `Postings`: (32-bit group, 32-bit document key) pairs packed in one sorted uint64 array, plus a
  small dict of recent entries: every document filed under a group is one binary-searched slice.
  Entries of evicted documents are dropped lazily, when the dict is merged into the array.

Everything pickles as a handful of arrays, so saving and loading the index is a copy of its
buffers, not a walk over millions of objects. For the saved index (pipeline/stories/persist.py)
each container also says what changed since it was last saved, so a save writes only that:

* a `Grow` is append-only between `replace`s (`gen` counts them): its new tail is all a save
  writes, unless it is `mutable` (written in place: the alive flags), then it is written whole;
* a `Postings` array changes only when merged (`version` counts the merges); its recent dict is
  small and written whole;
* a `KeyTable` changes in place (counts), so once saved it keeps a journal of its updates
  (`start_journal`), which a save writes as one aggregated delta (`journal_delta`) and a load
  applies (`apply`); the counts, not the layout of the two levels, are what it means.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


ID_BYTES = 3   # a term id or shingle hash (24-bit, pipeline/stories/text.py) as stored in a row


def to_bytes24(ids: np.ndarray) -> np.ndarray:
    """uint32 values below 2**24 -> their 3 low bytes each (little-endian), as uint8."""
    if len(ids) and int(ids.max()) >> (8 * ID_BYTES):
        raise ValueError("a value does not fit in 3 bytes")
    return ids.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :ID_BYTES].ravel()


def from_bytes24(raw: np.ndarray) -> np.ndarray:
    """The inverse of `to_bytes24`: uint32 values."""
    out = np.zeros((len(raw) // ID_BYTES, 4), dtype=np.uint8)
    out[:, :ID_BYTES] = raw.reshape(-1, ID_BYTES)
    return out.view("<u4").ravel().astype(np.uint32, copy=False)


class Grow:
    """An append-only numpy array with spare capacity; `view()` is the filled part."""

    __slots__ = ("_data", "gen", "mutable", "n", "pid", "synced")

    def __init__(self, dtype, capacity: int = 256, mutable: bool = False) -> None:
        self._data = np.zeros(max(16, capacity), dtype=dtype)
        self.n = 0
        self.gen = 0            # bumped by `replace`: the saved prefix is no longer this array's
        self.mutable = mutable  # values are written in place (a save writes it whole)
        self.pid: str | None = None   # its name in a saved index (pipeline/stories/persist.py)
        self.synced: str | None = None   # the saved index (manifest id) holding its first values

    def __len__(self) -> int:
        return self.n

    def view(self) -> np.ndarray:
        return self._data[: self.n]

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        if need > len(self._data):
            # 1.25x while small; a sixteenth once large, so the spare capacity of the big buffers
            # (the rows' term ids) stays near 3% of them, for a copy of ~16 bytes per byte appended.
            have = len(self._data)
            size = max(need, have + (have // 4 if have < 1 << 20 else have // 16) + 16)
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
        self.gen += 1

    @classmethod
    def of(cls, data: np.ndarray, gen: int = 0, pid: str | None = None, synced: str | None = None) -> Grow:
        """A Grow holding `data` (taken, not copied)."""
        out = cls.__new__(cls)
        out._data, out.n, out.gen, out.mutable, out.pid, out.synced = data, len(data), gen, False, pid, synced
        return out

    def __getstate__(self) -> tuple:
        return (self.view().copy(), self.gen, self.mutable)

    def __setstate__(self, state: tuple) -> None:
        self._data = state[0]
        self.n = len(self._data)
        self.gen, self.mutable = (state[1], state[2]) if len(state) > 1 else (0, False)
        self.pid = self.synced = None


_SAT = 255   # a small table's df of 255 means: the count is in its overflow dict


class _Level:
    """Sorted keys and their columns (df, refs, background)."""

    __slots__ = ("bg", "df", "keys", "refs")

    def __init__(self, small: bool = False) -> None:
        self.keys = np.zeros(0, dtype=np.uint32)
        self.df = np.zeros(0, dtype=np.uint8 if small else np.int32)
        self.refs = np.zeros(0, dtype=np.int32)
        self.bg = np.zeros(0, dtype=np.float32)

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = self.keys
        if not len(keys):
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        pos = np.searchsorted(keys, ids)
        np.minimum(pos, len(keys) - 1, out=pos)
        return pos, keys[pos] == ids


class KeyTable:
    """uint32 key -> df (int32) [, refs (int32), background (float32)], for distinct key arrays.

    `df` counts the documents of the corpus statistics holding the key; `refs` the stored
    documents holding it (a key they hold keeps its background while none is counted); the
    background is set when the key is first seen. A key with df and refs both 0 is dropped at the
    next merge. Two sorted levels: new keys are inserted into the small one (a memmove of it),
    which is merged into the large one when it passes a sixteenth of it.

    Without the extra columns (word pairs, lines: mostly in one or two documents each) the df is
    one byte: counts from 255 up (or below 0) are kept in a dict beside it, marked 255 in the array.
    """

    def __init__(self, extra: bool = True) -> None:
        self.extra = extra
        self._small = not extra
        self._over: dict[int, int] = {}   # key -> df, where the one-byte df says _SAT
        self._main = _Level(self._small)
        self._recent = _Level(self._small)
        self.pid: str | None = None
        # Updates since the last save (None: never saved, nothing recorded): (ids, ddf, drefs, bg).
        self._journal: list[tuple[np.ndarray, int, int, np.ndarray | None]] | None = None
        self.synced: str | None = None   # the saved index (manifest id) the journal continues

    def __len__(self) -> int:
        return len(self._main.keys) + len(self._recent.keys)

    def _levels(self) -> tuple[_Level, _Level]:
        return self._main, self._recent

    def update(self, ids: np.ndarray, ddf: int, drefs: int = 0, bg: np.ndarray | None = None) -> None:
        """Add `ddf` / `drefs` at `ids` (distinct); keys not known are created with `bg` (if given)."""
        if not len(ids):
            return
        if self._journal is not None:
            self._journal.append((np.array(ids, dtype=np.uint32), ddf, drefs, None if bg is None else np.array(bg, dtype=np.float32)))
        rest = np.arange(len(ids))
        for level in self._levels():
            pos, found = level.find(ids[rest])
            hit = pos[found]
            if ddf:
                self._add_df(level, hit, np.full(len(hit), ddf, dtype=np.int64))
            if drefs and self.extra:
                level.refs[hit] += drefs
            rest = rest[~found]
            if not len(rest):
                return
        if ddf < 0 or (drefs < 0 and not ddf):
            return   # nothing to take from keys the table does not hold
        new = ids[rest]
        order = np.argsort(new, kind="stable")
        new = new[order]
        r = self._recent
        at = np.searchsorted(r.keys, new)
        r.keys = np.insert(r.keys, at, new)
        r.df = np.insert(r.df, at, self._stored_df(new, np.full(len(new), ddf, dtype=np.int64)))
        if self.extra:
            r.refs = np.insert(r.refs, at, np.int32(drefs))
            values = np.zeros(len(new), dtype=np.float32) if bg is None else np.asarray(bg, dtype=np.float32)[rest][order]
            r.bg = np.insert(r.bg, at, values)
        if len(r.keys) > max(4096, len(self._main.keys) // 16):
            self.merge()

    def _stored_df(self, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The df column's values for new `keys` (a small table keeps what a byte cannot aside)."""
        if not self._small:
            return values.astype(np.int32)
        odd = (values < 0) | (values >= _SAT)
        for key, v in zip(keys[odd].tolist(), values[odd].tolist(), strict=True):
            self._over[key] = v
        return np.where(odd, _SAT, values).astype(np.uint8)

    def _add_df(self, level: _Level, hit: np.ndarray, delta: np.ndarray) -> None:
        if not self._small:
            level.df[hit] += delta.astype(np.int32)
            return
        cur = level.df[hit].astype(np.int64)
        new = cur + delta
        plain = (cur != _SAT) & (new >= 0) & (new < _SAT)
        level.df[hit[plain]] = new[plain]
        odd = np.flatnonzero(~plain)
        if not len(odd):
            return
        over = self._over
        for h, key, d, c in zip(hit[odd].tolist(), level.keys[hit[odd]].tolist(), delta[odd].tolist(), cur[odd].tolist(), strict=True):
            v = over.pop(key, 0) + d if c == _SAT else c + d
            if 0 <= v < _SAT:
                level.df[h] = v
            else:
                level.df[h] = _SAT
                over[key] = v

    def _df_values(self, level: _Level, pos: np.ndarray) -> np.ndarray:
        df = level.df[pos].astype(np.float64)
        if self._small and self._over:
            sat = np.flatnonzero(df == _SAT)
            if len(sat):
                df[sat] = [self._over.get(k, _SAT) for k in level.keys[pos[sat]].tolist()]
        return df

    # -- saving: a journal of the updates since the last save ------------------------------------

    def start_journal(self, synced: str) -> None:
        """Record updates from now on: the saved index `synced` holds the table as it is now."""
        self._journal, self.synced = [], synced

    def journal_size(self) -> int:
        return -1 if self._journal is None else sum(len(op[0]) for op in self._journal)

    def journal_delta(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The journal as one update: distinct sorted ids, summed df and refs changes, and the
        background of the first update that gave one (NaN where none did)."""
        ops = self._journal or []
        if not ops:
            return (np.zeros(0, np.uint32), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
        ids = np.concatenate([op[0] for op in ops])
        ddf = np.concatenate([np.full(len(op[0]), op[1], dtype=np.int64) for op in ops])
        drefs = np.concatenate([np.full(len(op[0]), op[2], dtype=np.int64) for op in ops])
        bg = np.concatenate([op[3] if op[3] is not None else np.full(len(op[0]), np.nan, np.float32) for op in ops])
        keys, inverse = np.unique(ids, return_inverse=True)
        df_sum = np.bincount(inverse, weights=ddf, minlength=len(keys)).astype(np.int32)
        refs_sum = np.bincount(inverse, weights=drefs, minlength=len(keys)).astype(np.int32)
        first_bg = np.full(len(keys), np.nan, dtype=np.float32)
        given = np.flatnonzero(~np.isnan(bg))[::-1]   # the first one written last wins
        first_bg[inverse[given]] = bg[given]
        return keys, df_sum, refs_sum, first_bg

    def apply(self, ids: np.ndarray, ddf: np.ndarray, drefs: np.ndarray, bg: np.ndarray) -> None:
        """Apply a `journal_delta`: per-key changes; absent keys with a positive change are created."""
        if not len(ids):
            return
        ddf, drefs = ddf.astype(np.int32), drefs.astype(np.int32)
        rest = np.arange(len(ids))
        for level in self._levels():
            pos, found = level.find(ids[rest])
            hit, at = pos[found], rest[found]
            self._add_df(level, hit, ddf[at].astype(np.int64))
            if self.extra:
                level.refs[hit] += drefs[at]
            rest = rest[~found]
        rest = rest[(ddf[rest] > 0) | ((drefs[rest] > 0) if self.extra else False)]
        if not len(rest):
            return
        r, add = self._recent, _Level(self._small)
        add.keys, add.df = ids[rest], self._stored_df(ids[rest], ddf[rest].astype(np.int64))
        if self.extra:
            add.refs, add.bg = drefs[rest], np.nan_to_num(bg[rest], nan=0.0).astype(np.float32)
        keys = np.concatenate((r.keys, add.keys))
        order = np.argsort(keys, kind="stable")
        r.keys, r.df = keys[order], np.concatenate((r.df, add.df))[order]
        if self.extra:
            r.refs, r.bg = np.concatenate((r.refs, add.refs))[order], np.concatenate((r.bg, add.bg))[order]
        if len(r.keys) > max(4096, len(self._main.keys) // 16):
            self.merge()

    def main_arrays(self) -> dict[str, np.ndarray]:
        """The table merged into one level: its arrays by name (for a saved base)."""
        self.merge()
        m = self._main
        if self.extra:
            return {"keys": m.keys, "df": m.df, "refs": m.refs, "bg": m.bg}
        over = self._over
        return {
            "keys": m.keys, "df": m.df,
            "over_keys": np.fromiter(over.keys(), dtype=np.uint32, count=len(over)),
            "over_df": np.fromiter(over.values(), dtype=np.int64, count=len(over)),
        }

    @classmethod
    def from_arrays(cls, extra: bool, arrays: dict[str, np.ndarray]) -> KeyTable:
        out = cls(extra)
        out._main.keys, out._main.df = arrays["keys"], arrays["df"]
        if extra:
            out._main.refs, out._main.bg = arrays["refs"], arrays["bg"]
        elif "over_keys" in arrays:
            out._over = dict(zip(arrays["over_keys"].tolist(), arrays["over_df"].tolist(), strict=True))
        return out

    def get(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(df, background) of each of `ids` (0 for unknown keys), as float64."""
        df = np.zeros(len(ids), dtype=np.float64)
        bg = np.zeros(len(ids), dtype=np.float64)
        for level in self._levels():
            pos, found = level.find(ids)
            df[found] = self._df_values(level, pos[found])
            if self.extra:
                bg[found] = level.bg[pos[found]]
        return df, bg

    def total_df(self) -> int:
        total = 0
        for level in self._levels():
            df = level.df.astype(np.int64)
            total += int(df[df != _SAT].sum()) if self._small else int(df.sum())
        return total + sum(self._over.values())

    def live_keys(self) -> set[int]:
        out: set[int] = set()
        for level in self._levels():
            live = (level.df > 0) | (level.refs > 0) if self.extra else level.df > 0
            out.update(level.keys[live].tolist())
        return out

    def negative(self) -> bool:
        return any(v < 0 for v in self._over.values()) or any(
            bool((lv.df < 0).any() or (lv.refs < 0).any()) for lv in self._levels()
        )

    def merge(self) -> None:
        """Fold the recent level into the main one and drop the dead keys."""
        m, r = self._main, self._recent
        keys = np.concatenate((m.keys, r.keys))
        order = np.argsort(keys, kind="stable")
        merged = _Level(self._small)
        merged.keys = keys[order]
        merged.df = np.concatenate((m.df, r.df))[order]
        if self.extra:
            merged.refs = np.concatenate((m.refs, r.refs))[order]
            merged.bg = np.concatenate((m.bg, r.bg))[order]
            live = (merged.df > 0) | (merged.refs > 0)
            merged.refs, merged.bg = merged.refs[live], merged.bg[live]
        else:
            live = merged.df > 0
        merged.keys, merged.df = merged.keys[live], merged.df[live]
        self._main, self._recent = merged, _Level(self._small)

    def __getstate__(self) -> dict:
        return {"extra": self.extra, **self.main_arrays()}

    def __setstate__(self, state: dict) -> None:
        got = KeyTable.from_arrays(state["extra"], state)
        self.__dict__.update(got.__dict__)


class Postings:
    """Documents filed under 32-bit groups: one sorted uint64 array of (group << 32 | key).

    `alive(keys) -> bool mask` tells which document keys are still indexed; the entries of the
    others are skipped by `get` and dropped by the next merge.
    """

    def __init__(self) -> None:
        self.packed = np.zeros(0, dtype=np.uint64)
        self._pending: dict[int, list[int]] = {}
        self._pending_n = 0
        self.version = 0              # bumped when `packed` changes (a save rewrites it then)
        self.pid: str | None = None
        self.synced: str | None = None   # the saved index (manifest id) holding this `packed`

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

    def insert(self, group: int, keys: list[int], alive: Callable[[np.ndarray], np.ndarray]) -> None:
        """File `keys` (of documents indexed earlier) under `group` too, keeping its keys in order."""
        pending = self._pending.setdefault(group, [])
        pending.extend(keys)
        pending.sort()
        self._pending_n += len(keys)
        g = np.uint64(group) << _SHIFT
        hi = int(np.searchsorted(self.packed, g | _LOW32, side="right"))
        if hi and (int(self.packed[hi - 1]) >> 32) == group and int(self.packed[hi - 1] & _LOW32) > min(keys):
            self.merge(alive)   # older entries of the group were merged past them: sort them in

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
        self.version += 1

    def all_keys(self) -> set[int]:
        out = set((self.packed & _LOW32).tolist())
        for ks in self._pending.values():
            out.update(ks)
        return out

    def pending_array(self) -> np.ndarray:
        """The recent entries as packed uint64 (group << 32 | key), in insertion order per group."""
        return self.__getstate__()["pending"]

    @classmethod
    def from_arrays(
        cls, packed: np.ndarray, pending: np.ndarray, version: int = 0, pid: str | None = None, synced: str | None = None
    ) -> Postings:
        out = cls.__new__(cls)
        out.__setstate__({"packed": packed, "pending": pending})
        out.version, out.pid, out.synced = version, pid, synced
        return out

    def __getstate__(self) -> dict:
        groups = np.fromiter((g for g, ks in self._pending.items() for _ in ks), dtype=np.uint64, count=self._pending_n)
        keys = np.fromiter((k for ks in self._pending.values() for k in ks), dtype=np.uint64, count=self._pending_n)
        return {"packed": self.packed, "pending": (groups << _SHIFT) | keys, "version": self.version}

    def __setstate__(self, state: dict) -> None:
        self.packed = state["packed"]
        self._pending = {}
        self._pending_n = 0
        self.version, self.pid, self.synced = state.get("version", 0), None, None
        for p in state["pending"].tolist():
            self._pending.setdefault(p >> 32, []).append(p & 0xFFFFFFFF)
            self._pending_n += 1


def nbytes(obj) -> int:
    """Bytes held by the numpy arrays of `obj` (a container of this module), capacity included."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, Grow):
        return obj._data.nbytes
    if isinstance(obj, _Level):
        return sum(a.nbytes for a in (obj.keys, obj.df, obj.refs, obj.bg))
    if isinstance(obj, KeyTable):
        return nbytes(obj._main) + nbytes(obj._recent) + 16 * len(obj._over)
    if isinstance(obj, Postings):
        return obj.packed.nbytes + 8 * obj._pending_n
    if isinstance(obj, RowStore):
        return sum(nbytes(g) for g in (obj.alive, *obj.cols.values(), *obj.bufs.values(), *obj.starts.values()))
    return 0


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
        self.alive = Grow(bool, mutable=True)
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
