"""The daemon's health, as `newsmon status` reads it from another process.

The daemon writes `<data_dir>/daemon-health.json` (atomically) after every batch run: when a
batch last succeeded, how many failed in a row since and the last error. `status` reads it,
together with the writer lock (is a daemon running?) and the spool (are items waiting too long?),
and `--fail-on-error` turns a failing or stale pipeline into exit 1, as /healthz turns it into 503.
A file rather than a table: a failing batch may be failing because the store is, and the health
must still be written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.fileio import write_atomic

HEALTH_FILE = "daemon-health.json"

log = logging.getLogger("newsmon.health")


def write_health(data_dir: Path, info: dict[str, Any]) -> None:
    try:
        write_atomic(Path(data_dir) / HEALTH_FILE, json.dumps(info, default=str) + "\n")
    except OSError as e:  # health reporting must never take the daemon down
        log.warning("health_file_not_written path=%s error=%s", Path(data_dir) / HEALTH_FILE, e.strerror)


def read_health(data_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(data_dir) / HEALTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
