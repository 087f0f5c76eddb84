"""Files written whole or not at all.

`write_atomic(path, text)` writes to a temporary file in the same folder, flushes it to disk and
renames it over `path` (rename(2) is atomic within a file system): a reader, or the next run
after a crash, sees the old file or the new one, never half of one. Errors are `OSError`s for
the caller to turn into one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets it, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write_atomic(path: str | Path, text: str, *, encoding: str = "utf-8") -> None:
    path = Path(path)
    # The file keeps the mode it had; a new one gets what open() would give it (0666 less the
    # umask), not mkstemp's 0600, which a daemon running as another user could not read.
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: str | Path, mode: str) -> Iterator[Any]:
    """`path` opened in `mode` (text, UTF-8) under an exclusive flock, released on leaving: the
    pending files that CLI verbs append to while the daemon drains them."""
    with open(path, mode, encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
