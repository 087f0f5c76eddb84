"""Extension signatures: skipped only when no other user could have swapped the files."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from pipeline.store import Store, connection


def _cache(tmp_path: Path, mode: int) -> Path:
    d = tmp_path / "cache" / "v"
    d.mkdir(parents=True)
    (d / "sqlite_scanner.duckdb_extension").write_bytes(b"x")
    d.chmod(mode)
    return d / "sqlite_scanner.duckdb_extension"


def test_a_private_cache_skips_the_check_and_a_shared_one_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = _cache(tmp_path / "p", 0o700)
    monkeypatch.setattr(connection, "_sqlite_extension", lambda: private)
    assert connection._connect_config().get("allow_unsigned_extensions") is True  # noqa: SLF001
    shared = _cache(tmp_path / "s", 0o777)
    monkeypatch.setattr(connection, "_sqlite_extension", lambda: shared)
    assert "allow_unsigned_extensions" not in connection._connect_config()  # noqa: SLF001
    shared.parent.chmod(0o700)
    shared.chmod(0o666)  # a file others may rewrite
    assert "allow_unsigned_extensions" not in connection._connect_config()  # noqa: SLF001


def test_the_real_cache_is_private_and_a_reader_still_cannot_load(tmp_path: Path) -> None:
    Store.open(tmp_path / "d").close()
    cache = connection._sqlite_extension().parent  # noqa: SLF001
    assert cache.stat().st_uid == os.getuid() and not cache.stat().st_mode & 0o022
    with Store.open(tmp_path / "d", read_only=True) as s:
        ext = tmp_path / "other.duckdb_extension"  # not signed, not loaded yet
        ext.write_bytes(b"\0" * 1024)
        with pytest.raises(duckdb.Error, match="disabled"):
            s.query(f"LOAD '{ext}'")
        with pytest.raises(duckdb.Error, match="locked"):
            s.query("SET allow_unsigned_extensions = false")
