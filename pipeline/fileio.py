"""Files written whole or not at all.

`write_atomic(path, text)` writes to a temporary file in the same folder, flushes it to disk and
renames it over `path` (rename(2) is atomic within a file system): a reader, or the next run
after a crash, sees the old file or the new one, never half of one. Errors are `OSError`s for
the caller to turn into one line.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, text: str, *, encoding: str = "utf-8") -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
