"""A fixture world for the dashboard: the demo's store (feeds served from loopback, the real
pipeline, alerts and their deliveries), built once per session, and the dashboard serving it."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("NEWSMON_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def world_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.demo import run_demo

    ddir = tmp_path_factory.mktemp("dash") / "store"
    assert run_demo(data_dir=str(ddir), out=io.StringIO()) == 0
    return ddir


@pytest.fixture(scope="session")
def dashboard(world_store: Path):
    from pipeline.dashboard.serve import Access, DashboardServer

    with DashboardServer(world_store, "127.0.0.1", 0, Access(), threads=4) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (it cannot download a browser of its own here)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} missing: .ci/run installs Debian's chromium and chromium-driver")
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each page's screenshot goes: $NEWSMON_SCREENSHOTS (kept), else a temporary folder."""
    d = Path(os.environ["NEWSMON_SCREENSHOTS"]) if os.environ.get("NEWSMON_SCREENSHOTS") else tmp_path_factory.mktemp("shots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def copy_store(src: Path, dst: Path) -> Path:
    import sqlite3

    shutil.copytree(src, dst)
    with sqlite3.connect(dst / "catalog.sqlite") as db:
        db.execute("UPDATE ducklake_metadata SET value = ? WHERE key = 'data_path'", [f"{dst / 'lake'}/"])
    return dst
