"""The store as an operator meets it: one writer per data directory, and a store that moves."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.config import Source
from pipeline.errors import StoreError
from pipeline.store import Store
from pipeline.store.lock import read_holder

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def test_a_second_writer_is_refused_and_names_the_holder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = Store.open(data)
    try:
        with pytest.raises(StoreError, match=r"in use by another newsmon writer \(pid \d+ on .*one daemon per store"):
            Store.open(data)
        holder = read_holder(data)
        assert holder is not None and isinstance(holder["pid"], int)
        # Readers take no lock: they open and read while the writer holds the store.
        with Store.open(data, read_only=True) as reader:
            assert reader.scalar("SELECT count(*) FROM feeds") == 0
    finally:
        first.close()
    assert read_holder(data) is None
    Store.open(data).close()  # released on close: the next writer starts


def test_a_second_daemon_from_another_process_refuses_to_start_and_keeps_the_batch_shards(tmp_path: Path) -> None:
    """The second `newsmon run` exits 1 with one line, and the first daemon's in-flight shards
    in data/batches/ are still there (its start-up used to delete them)."""
    data = tmp_path / "data"
    sources = tmp_path / "sources.yaml"
    sources.write_text("feeds:\n  - id: a\n    url: https://example.org/a.xml\n", encoding="utf-8")
    first = Store.open(data)
    try:
        shard = data / "batches" / "20260302T060000-abcdef01" / "part-0.jsonl"
        shard.parent.mkdir(parents=True)
        shard.write_text("{}\n", encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--once", "--sources", str(sources), "--data-dir", str(data)],
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 1, proc.stderr
        assert "in use by another newsmon writer" in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert shard.exists()
    finally:
        first.close()


@pytest.mark.embedded_store  # copies the data directory that holds the catalog and the files
def test_a_store_copied_to_another_path_opens_for_readers_and_the_writer(tmp_path: Path) -> None:
    """A backup restored elsewhere, or a volume mounted at another path: the catalog's recorded
    data path no longer matches, and every command used to fail."""
    src = tmp_path / "original"
    with Store.open(src) as s:
        # More rows than the inlining limit, so the table data lives in Parquet files under lake/.
        s.sync_feeds([Source(id=f"f{n}", url=f"https://example.org/{n}.xml") for n in range(500)], NOW)
        assert list((src / "lake").rglob("*.parquet"))
    moved = tmp_path / "elsewhere" / "data"
    shutil.copytree(src, moved)
    shutil.rmtree(src)  # the old path is gone, as on another machine
    with Store.open(moved, read_only=True) as r:
        assert r.scalar("SELECT count(*) FROM feeds") == 500
    with Store.open(moved) as w:
        w.sync_feeds([Source(id="only", url="https://example.org/only.xml")], NOW)
    with Store.open(moved, read_only=True) as r:
        assert r.scalar("SELECT count(*) FROM feeds") == 1
    assert not src.exists()  # nothing was written at the old path


def test_a_data_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "data"
    f.write_text("not a store", encoding="utf-8")
    with pytest.raises(StoreError, match="is a file, not a directory"):
        Store.open(f)
    with pytest.raises(StoreError, match="cannot create the data directory"):
        Store.open(f / "sub")


def _as_unprivileged() -> list[str]:
    """A command prefix that runs as a user without write access to root's files (`nobody`):
    root writes anywhere, so a read-only directory means nothing to it."""
    import os

    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only for the test")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder any user can read: pytest's own tmp root is private to its owner (and other
    pytest sessions of the same user reset its mode)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="newsmon-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_read_only_store_is_one_line_for_the_writer_and_still_readable(open_dir: Path) -> None:
    """`run --once` on a read-only store, or into a data dir it cannot create, was a traceback;
    check-config said ok for an unwritable data dir."""
    tmp_path = open_dir
    store = tmp_path / "store"
    Store.open(store).close()
    for p in [store, *store.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # readable by anyone, writable by its owner only
    sources = tmp_path / "sources.yaml"
    sources.write_text("feeds:\n  - id: a\n    url: https://example.org/a.xml\n", encoding="utf-8")
    sources.chmod(0o644)
    cli = [*_as_unprivileged(), sys.executable, "-m", "pipeline.cli"]
    for data, words in ((store, "is not writable by this user"), (store / "new", "cannot create the data directory")):
        proc = subprocess.run([*cli, "run", "--once", "--sources", str(sources), "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        check = subprocess.run([*cli, "check-config", "--sources", str(sources), "--data-dir", str(data)],
                               capture_output=True, text=True, timeout=300)
        assert check.returncode == 2 and "data_dir: " in check.stderr, check.stderr
    query = subprocess.run([*cli, "query", "--data-dir", str(store), "SELECT count(*) AS n FROM feeds", "-f", "json"],
                           capture_output=True, text=True, timeout=300)
    assert query.returncode == 0 and query.stdout.strip() == '{"n": 0}', query.stderr
