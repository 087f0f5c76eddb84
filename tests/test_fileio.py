"""write_atomic: whole or nothing, and with the modes a plain open() would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pipeline.fileio import write_atomic


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_a_new_file_gets_the_umask_mode_not_mkstemps_private_one(tmp_path: Path) -> None:
    # A topic model written by `topics train` must be readable by a daemon running as another user.
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "model.json", "{}\n")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "model.json") == 0o644
    assert (tmp_path / "model.json").read_text(encoding="utf-8") == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]  # no temporary file left


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.json"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o600)
    write_atomic(target, "new")
    assert _mode(target) == 0o600 and target.read_text(encoding="utf-8") == "new"
