"""Shared fixtures: project paths, the corpora folder, seed documents."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def corpora_dir() -> Path:
    """../shared/corpora by default; NEWSMON_CORPORA overrides. Missing under CI is a failure."""
    path = Path(os.environ.get("NEWSMON_CORPORA", ROOT.parent / "shared" / "corpora"))
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"corpora folder {path} is missing; CI must have ../shared/corpora")
        pytest.skip(f"corpora folder {path} not found (set NEWSMON_CORPORA)")
    return path


@pytest.fixture
def corpora() -> Path:
    return corpora_dir()


@pytest.fixture(scope="session")
def seed_labels() -> dict:
    return json.loads((SEEDS / "labels.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback traffic must never be sent through a proxy from the environment."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")


# --- the store on PostgreSQL + an S3-compatible server (NEWSMON_TEST_STORE=remote) -------------
# With NEWSMON_TEST_STORE=remote, one PostgreSQL and one SeaweedFS S3 server run on loopback for the
# session (tests/services.py), and every test gets its own catalog database and its own object
# prefix through the environment that Store.open and config.load read (NEWSMON_STORE_CATALOG,
# NEWSMON_STORE_DATA_PATH, PGPASSWORD, AWS_*). Tests about the embedded layout itself (a SQLite
# catalog beside the files, a store copied to another path) are marked `embedded_store` and skipped.

REMOTE = os.environ.get("NEWSMON_TEST_STORE") == "remote"


def pytest_collection_modifyitems(config, items) -> None:
    if not REMOTE:
        return
    skip = pytest.mark.skip(reason="about the embedded store's files; the store is on PostgreSQL + S3 in this run")
    for it in items:
        if "embedded_store" in it.keywords:
            it.add_marker(skip)


@pytest.fixture(scope="session")
def store_servers():
    from tests import services

    lack = services.missing()
    if lack:
        if os.environ.get("CI") == "true":
            raise RuntimeError("NEWSMON_TEST_STORE=remote but missing: " + ", ".join(lack))
        pytest.skip("missing " + ", ".join(lack))
    # A directory of its own, not pytest's: as root, PostgreSQL runs as another user, and pytest's
    # temporary root is private to root.
    with services.running() as (pg, s3):
        yield pg, s3


@pytest.fixture
def remote_store(request, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This test's own catalog database and object prefix, exported to the environment."""
    import re
    import uuid

    from tests import services

    pg, s3 = request.getfixturevalue("store_servers")
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:6]
    env = services.store_env(pg, s3, pg.create_database(name), prefix=name)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture(autouse=True)
def _store_location(request) -> None:
    if REMOTE:
        request.getfixturevalue("remote_store")
