"""One writer per store: an exclusive lock on `<data_dir>/writer.lock`.

Consumes a data directory; emits a held `WriterLock` (released by `release()` or when the process
dies, because the kernel drops an flock with its last file descriptor) or raises `StoreError`
naming the process that holds it. Readers never take the lock, so analysts are unaffected.

Why flock(2) from the standard library and not a lock-file package: the kernel releases the lock
when its holder dies, so there is no stale lock to clean up after a crash (a PID file would need
a liveness check that races), and no dependency is needed for one Linux primitive. The file's
content (pid, host, start time) only serves the message and `newsmon status`; the lock itself is
what decides. On a network file system flock may be advisory per host: run one daemon per store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import StoreError

LOCK_FILE = "writer.lock"


def _describe(info: dict[str, Any]) -> str:
    if not info:
        return "another process"
    return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}"


def read_holder(data_dir: Path) -> dict[str, Any] | None:
    """Who holds the writer lock on `data_dir` (pid, host, since), or None when nobody does.

    Takes no lock that could block the writer: a shared, non-blocking attempt that is dropped at
    once. A missing lock file means no writer ever ran here."""
    path = Path(data_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(fd) or {"pid": None}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_info(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode() or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class WriterLock:
    """The exclusive writer lock on a data directory, held until `release()`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot create the writer lock {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_info(self._fd)
            os.close(self._fd)
            self._fd = None
            raise StoreError(
                f"the store at {data_dir} is in use by another newsmon writer ({_describe(holder)}); "
                "run one daemon per store (stop it first, or pass another --data-dir). "
                "Readers (query, status) need no lock and may run alongside."
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None
