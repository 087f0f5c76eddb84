"""The story index on disk: a directory beside the store, written incrementally after each
committed batch and loaded at start instead of a rebuild.

The directory (`story_index/`)::

    manifest.json   what the saved index is: format, batch id, fingerprint (settings and code),
                    and every file below with its length and CRC-32. Written last, by an atomic
                    rename: a reader sees the old index or the new one, never half of one.
    meta-<seq>.bin  the pickled object graph without its big arrays: settings, scalars, the
                    alive flags, the recent postings, the cached vectors. Rewritten by each save.
    base-<...>.bin  one array each, written whole: a `Grow` the first time it is saved (or after
                    a `replace`), a `Postings` array after a merge, a `KeyTable` after a rebase.
    log-<seq>.bin   append-only: one record per save of what changed since the save before -
                    the new tails of the `Grow`s and each `KeyTable`'s journal as one delta.

So a save writes about what the batch added (its articles' rows and term ids, the counts it
changed), not the whole index; see pipeline/stories/columns.py for how each container tells.
When the log has grown past half of the bases (or the settings changed, or `full`), a save
writes everything whole and starts a new log (compaction); files the manifest no longer names
are deleted after the rename.

`load_index` returns the object only when the manifest parses, the format and the fingerprint
match, the batch id is the one the caller expects (the store's last committed batch) and every
file it names has the recorded length and CRC-32; otherwise it returns None and says why, and the
caller rebuilds from the store. A torn, truncated, stale or foreign index is detected, never
trusted. The log is only ever appended past the length the manifest records (a save that failed
half-way leaves bytes beyond it, which the next save cuts off), so a crash mid-save leaves the
previous index whole.

The store stays the truth: the directory is a cache of what folding derived from it.
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import pickle
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.stories.columns import Grow, KeyTable, Postings

FORMAT = 3
MANIFEST = "manifest.json"
_RECORD = b"NMLR"          # a log record: magic, 8-byte header length, JSON header, the arrays
COMPACT_LOG_RATIO = 0.5    # a log past this share of the bases' bytes: the next save is whole
REBASE_RATIO = 0.25        # a KeyTable whose deltas pass this share of its keys is written whole


def fingerprint(settings: Any) -> str:
    """What must match for a saved index to be reused: the settings and the index's code version."""
    from pipeline.stories.pairs import MODEL_VERSION

    return hashlib.sha1(f"{FORMAT}|{MODEL_VERSION}|{settings!r}".encode()).hexdigest()[:16]


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic collector while (un)pickling: the collections the new containers trigger
    scan the growing heap again and again, and everything made is reachable anyway."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class Loaded:
    value: Any | None
    reason: str          # "ok", or why the index was not used


@dataclass
class SaveReport:
    bytes_written: int
    whole: bool          # everything written whole (first save, compaction), not incrementally
    files: int = 0
    meta_bytes: int = 0  # of them, the pickled graph (settings, alive flags, cached vectors, ...)
    log_bytes: int = 0   # the log record (Grow tails, KeyTable deltas)


def read_header(path: Path) -> dict | None:
    """The manifest of the index saved in directory `path`, if it parses."""
    try:
        with open(Path(path) / MANIFEST, "rb") as fh:
            got = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) else None


def _fsync_dir(path: Path) -> None:
    try:  # the rename itself survives a power cut only once the directory is synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some filesystems do not sync directories; the rename is still atomic
        pass


def _bytes_of(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array)).cast("B")


@dataclass
class _Writer:
    """One save: decides per container what to write, given the previous manifest."""

    directory: Path
    seq: int
    prev: dict | None
    whole: bool
    blobs: dict[str, dict] = field(default_factory=dict)
    record: list[tuple[list, np.ndarray]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    bytes_written: int = 0
    after_commit: list[Callable[[str], None]] = field(default_factory=list)

    def _prev_entry(self, obj: Any, kind: str) -> dict | None:
        """What the previous save holds of `obj`, if this object is the one it was saved from."""
        if self.whole or self.prev is None or obj.pid is None or obj.synced != self.prev["id"]:
            return None
        got = self.prev["blobs"].get(obj.pid)
        return got if got is not None and got.get("kind") == kind else None

    def _synced(self, obj: Any) -> None:
        self.after_commit.append(lambda mid: setattr(obj, "synced", mid))

    def _base(self, name: str, array: np.ndarray) -> dict:
        data = _bytes_of(array)
        path = self.directory / f"base-{self.seq:06d}-{name}.bin"
        with open(path, "wb") as fh:
            fh.write(data)
        self.written.append(path)
        self.bytes_written += len(data)
        return {"file": path.name, "bytes": len(data), "crc": zlib.crc32(data), "dtype": array.dtype.str}

    def _log(self, pid: str, gen: int, name: str, array: np.ndarray) -> None:
        self.record.append(([pid, gen, name, array.dtype.str, len(array)], array))

    def grow(self, g: Grow) -> tuple:
        if g.pid is None:
            g.pid = uuid.uuid4().hex[:12]
        prev = self._prev_entry(g, "grow")
        if prev is not None and prev["gen"] == g.gen and g.n >= prev["n"] and prev["dtype"] == g.view().dtype.str:
            tail = g.view()[prev["n"] :]
            if len(tail):
                self._log(g.pid, g.gen, "tail", tail)
            self.blobs[g.pid] = dict(prev, n=g.n)
        else:
            base = self._base(g.pid, g.view())
            self.blobs[g.pid] = {"kind": "grow", "gen": g.gen, "n": g.n, "dtype": base["dtype"], "base": base}
        self._synced(g)
        return ("grow", g.pid)

    def postings(self, p: Postings) -> tuple:
        if p.pid is None:
            p.pid = uuid.uuid4().hex[:12]
        prev = self._prev_entry(p, "postings")
        if prev is not None and prev["version"] == p.version:
            self.blobs[p.pid] = prev
        else:
            self.blobs[p.pid] = {"kind": "postings", "version": p.version, "base": self._base(p.pid, p.packed)}
        self._synced(p)
        return ("postings", p.pid, p.pending_array())

    def keys(self, k: KeyTable) -> tuple:
        if k.pid is None:
            k.pid = uuid.uuid4().hex[:12]
        prev = self._prev_entry(k, "keys")
        journal = k.journal_size()
        if (
            prev is not None and journal >= 0
            and prev["delta_n"] + journal <= max(4096, REBASE_RATIO * len(k))
        ):
            ids, ddf, drefs, bg = k.journal_delta()
            if len(ids):
                for name, array in (("ids", ids), ("ddf", ddf), ("drefs", drefs), ("bg", bg)):
                    self._log(k.pid, prev["gen"], name, array)
            self.blobs[k.pid] = dict(prev, delta_n=prev["delta_n"] + len(ids))
        else:
            gen = (prev or (self.prev or {}).get("blobs", {}).get(k.pid) or {}).get("gen", 0) + 1
            bases = {name: self._base(f"{k.pid}-{name}", a) for name, a in k.main_arrays().items()}
            self.blobs[k.pid] = {"kind": "keys", "extra": k.extra, "gen": gen, "delta_n": 0, "bases": bases}
        self.after_commit.append(k.start_journal)
        return ("keys", k.pid)


class _Pickler(pickle.Pickler):
    def __init__(self, fh, writer: _Writer) -> None:
        super().__init__(fh, protocol=5)
        self.writer = writer

    def persistent_id(self, obj: Any) -> tuple | None:
        if type(obj) is Grow:
            return None if obj.mutable else self.writer.grow(obj)   # mutable ones go inline, whole
        if type(obj) is Postings:
            return self.writer.postings(obj)
        if type(obj) is KeyTable:
            return self.writer.keys(obj)
        return None


def _usable_prev(directory: Path, settings: Any) -> dict | None:
    """The previous manifest, if a save may build on it (same format and settings, files whole)."""
    prev = read_header(directory)
    if prev is None or prev.get("format") != FORMAT or prev.get("fingerprint") != fingerprint(settings):
        return None
    log = prev.get("log") or {}
    try:
        if (directory / log["file"]).stat().st_size < log["bytes"]:
            return None
    except (OSError, KeyError, TypeError):
        return None
    return prev


def save_index(value: Any, path: Path, batch_id: str, settings: Any, full: bool = False) -> int:
    """Save `value` in directory `path`, tied to `batch_id`; returns the bytes written."""
    return save_index_report(value, path, batch_id, settings, full).bytes_written


def save_index_report(value: Any, path: Path, batch_id: str, settings: Any, full: bool = False) -> SaveReport:
    """`save_index`, saying also whether it wrote everything whole."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    prev = _usable_prev(directory, settings)
    if prev is not None and prev["log"]["bytes"] > COMPACT_LOG_RATIO * max(1, prev.get("base_bytes", 0)):
        full = True
    whole = full or prev is None
    seq = (prev or read_header(directory) or {}).get("seq", 0) + 1
    writer = _Writer(directory, seq, prev, whole)
    buf = io.BytesIO()
    with _no_cyclic_gc():
        _Pickler(buf, writer).dump(value)
    meta = buf.getbuffer()
    meta_path = directory / f"meta-{seq:06d}.bin"
    with open(meta_path, "wb") as fh:
        fh.write(meta)
    writer.written.append(meta_path)
    writer.bytes_written += len(meta)
    # The log: continued from the length the previous manifest records, or a new one.
    if whole:
        log = {"file": f"log-{seq:06d}.bin", "bytes": 0, "crc": 0}
        mode = "wb"
    else:
        log = dict(prev["log"])  # type: ignore[index]
        mode = "r+b"
    log_path = directory / log["file"]
    if writer.record or whole:
        with open(log_path, mode) as fh:
            fh.truncate(log["bytes"])
            fh.seek(log["bytes"])
            if writer.record:
                header = json.dumps({"seq": seq, "items": [item for item, _ in writer.record]}).encode()
                chunk = _RECORD + struct.pack("<Q", len(header)) + header
                crc = zlib.crc32(chunk, log["crc"])
                fh.write(chunk)
                n = len(chunk)
                for _, array in writer.record:
                    data = _bytes_of(array)
                    crc = zlib.crc32(data, crc)
                    fh.write(data)
                    n += len(data)
                log["bytes"] += n
                log["crc"] = crc
                writer.bytes_written += n
        writer.written.append(log_path)
    for p in writer.written:
        with open(p, "rb+") as fh:
            os.fsync(fh.fileno())
    base_bytes = sum(
        info["bytes"]
        for entry in writer.blobs.values()
        for info in ([entry["base"]] if "base" in entry else entry["bases"].values())
    )
    manifest = {
        "format": FORMAT,
        "id": uuid.uuid4().hex,
        "seq": seq,
        "batch_id": batch_id,
        "fingerprint": fingerprint(settings),
        "meta": {"file": meta_path.name, "bytes": len(meta), "crc": zlib.crc32(meta)},
        "log": log,
        "base_bytes": base_bytes,
        "blobs": writer.blobs,
    }
    tmp = directory / (MANIFEST + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(json.dumps(manifest).encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / MANIFEST)
    _fsync_dir(directory)
    for commit in writer.after_commit:
        commit(manifest["id"])
    named = {manifest["meta"]["file"], log["file"], MANIFEST}
    for entry in writer.blobs.values():
        named.update(info["file"] for info in ([entry["base"]] if "base" in entry else entry["bases"].values()))
    for p in directory.iterdir():
        if p.name not in named:
            try:
                p.unlink()
            except OSError:
                pass
    return SaveReport(writer.bytes_written, whole, len(writer.written), len(meta), log["bytes"] - (0 if whole else prev["log"]["bytes"]))  # type: ignore[index]


class _Torn(Exception):
    pass


def _read(directory: Path, info: dict) -> bytearray:
    path = directory / info["file"]
    try:
        with open(path, "rb") as fh:
            data = bytearray(info["bytes"])
            got = fh.readinto(data)
    except OSError as e:
        raise _Torn(f"{info['file']}: {e}") from e
    if got != info["bytes"]:
        raise _Torn(f"torn: {info['file']} has {got} of {info['bytes']} bytes")
    if zlib.crc32(data) != info["crc"]:
        raise _Torn(f"torn: {info['file']} has a wrong CRC-32")
    return data


def _array(directory: Path, info: dict) -> np.ndarray:
    return np.frombuffer(_read(directory, info), dtype=np.dtype(info["dtype"]))


def _log_items(directory: Path, log: dict) -> dict[str, list[tuple[int, str, np.ndarray]]]:
    """pid -> [(gen, name, array)] in the order the saves wrote them."""
    data = _read(directory, log)
    out: dict[str, list[tuple[int, str, np.ndarray]]] = {}
    view = memoryview(data)
    at = 0
    while at < len(data):
        if bytes(view[at : at + 4]) != _RECORD:
            raise _Torn(f"torn: {log['file']} has no record at byte {at}")
        (length,) = struct.unpack("<Q", view[at + 4 : at + 12])
        header = json.loads(bytes(view[at + 12 : at + 12 + length]))
        at += 12 + length
        for pid, gen, name, dtype, n in header["items"]:
            dt = np.dtype(dtype)
            array = np.frombuffer(data, dtype=dt, count=n, offset=at)
            at += n * dt.itemsize
            out.setdefault(pid, []).append((gen, name, array))
    return out


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, directory: Path, manifest: dict, log: dict) -> None:
        super().__init__(fh)
        self.directory, self.manifest, self.log = directory, manifest, log

    def persistent_load(self, pid: tuple) -> Any:
        kind, name = pid[0], pid[1]
        entry = self.manifest["blobs"][name]
        if kind == "grow":
            parts = [_array(self.directory, entry["base"])]
            parts += [a for gen, _, a in self.log.get(name, ()) if gen == entry["gen"]]
            data = parts[0] if len(parts) == 1 else np.concatenate(parts)
            if len(data) != entry["n"]:
                raise _Torn(f"torn: array {name} has {len(data)} of {entry['n']} values")
            return Grow.of(data, gen=entry["gen"], pid=name, synced=self.manifest["id"])
        if kind == "postings":
            return Postings.from_arrays(_array(self.directory, entry["base"]), pid[2], entry["version"], name, self.manifest["id"])
        if kind == "keys":
            table = KeyTable.from_arrays(entry["extra"], {k: _array(self.directory, v) for k, v in entry["bases"].items()})
            delta: dict[str, np.ndarray] = {}
            for gen, part, array in self.log.get(name, ()):
                if gen != entry["gen"]:
                    continue
                delta[part] = array
                if len(delta) == 4:
                    table.apply(delta["ids"], delta["ddf"], delta["drefs"], delta["bg"])
                    delta = {}
            table.pid = name
            table.start_journal(self.manifest["id"])
            return table
        raise pickle.UnpicklingError(f"unknown saved part {kind!r}")


def load_index(path: Path, batch_id: str | None, settings: Any) -> Loaded:
    """The object saved in directory `path` if it is whole and belongs to `batch_id` and `settings`."""
    directory = Path(path)
    if not (directory / MANIFEST).is_file():
        return Loaded(None, "no saved index")
    header = read_header(directory)
    if header is None:
        return Loaded(None, "unreadable manifest")
    if header.get("format") != FORMAT:
        return Loaded(None, f"format {header.get('format')} is not {FORMAT}")
    if header.get("fingerprint") != fingerprint(settings):
        return Loaded(None, "saved with other settings or code")
    if header.get("batch_id") != batch_id:
        return Loaded(None, f"stale: saved after batch {header.get('batch_id')}, the store's last is {batch_id}")
    try:
        meta = _read(directory, header["meta"])
        log = _log_items(directory, header["log"])
        with _no_cyclic_gc():
            return Loaded(_Unpickler(io.BytesIO(meta), directory, header, log).load(), "ok")
    except _Torn as e:
        return Loaded(None, str(e) if str(e).startswith("torn") else f"torn: {e}")
    except Exception as e:  # noqa: BLE001 - any unpickling failure means: rebuild
        return Loaded(None, f"unpickling failed ({type(e).__name__}: {e})")
