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


def add_notification_log(store_dir: Path) -> tuple[str, dict[str, int]]:
    """Give an alerted story of the store the rest of a lifecycle, through the notification log's
    own writer (pipeline.alert.nflog): a thread reply and a parent update after its first alert,
    a silenced first alert on a second route, and a digest that carried its alert (linked by the
    alert's `folded` delivery); plus a digest carrying only another story's alert, which must not
    show. Returns the story and the rows its Story page must show, by (kind, status)."""
    from datetime import timedelta

    from pipeline.alert import nflog
    from pipeline.store import Store

    with Store.open(store_dir) as s:
        _, alerts = s.query("SELECT alert_id, story_id, topic, created_at FROM alert_outbox ORDER BY created_at, alert_id")
        aid, story, topic, created = alerts[0]
        other = next(a for a in alerts if a[1] != story)
        _, firsts = s.query("SELECT route, channel, receipt FROM alert_notifications "
                            "WHERE story_id = ? AND kind = 'first' AND status = 'sent' LIMIT 1", [story])
        route, channel, parent = firsts[0]
        parent = parent or "1700000000.000100"  # the parent message's id (a Slack ts)
        t = created + timedelta(minutes=5)
        common = {"route": route, "channel": channel, "alert_id": aid, "topic": topic, "story_id": story}
        rows = [
            nflog.row(notification_id=nflog.nid(channel, "reply", aid, 1), kind="reply", seq=1, attempt=0, status="sent",
                      outlets=3, copies=4, thread=parent, receipt="1700000000.000200", noted_at=t, **common),
            nflog.row(notification_id=nflog.nid(channel, "update", aid, 1), kind="update", seq=1, attempt=0,
                      status="sent", outlets=3, copies=4, receipt=parent, noted_at=t, **common),
            nflog.row(notification_id=nflog.nid("quiet/slack", "first", aid), kind="first", seq=0, attempt=0,
                      status="silenced", detail="s-1: topic=... until ... by ops", noted_at=t,
                      **{**common, "route": "quiet", "channel": "quiet/slack"}),
        ]
        digest, stray = nflog.nid("digest/email", "digest", "mine"), nflog.nid("digest/email", "digest", "other")
        for n_id in (digest, stray):
            rows.append(nflog.row(notification_id=n_id, route="digest", channel="digest/email", kind="digest", seq=0,
                                  attempt=0, status="sent", outlets=1, receipt=f"<{n_id}@newsmon>", noted_at=t))
        deliveries = [nflog.delivery(aid, "digest/email", 0, "folded", t, receipt=digest),
                      nflog.delivery(other[0], "digest/email", 0, "folded", t, receipt=stray)]
        nflog.append(s, rows, deliveries)
        _, shown = s.query("SELECT kind, status, count(*) FROM alert_notifications WHERE story_id = ? GROUP BY ALL", [story])
    want = {f"{k}/{st}": n for k, st, n in shown}
    want["digest/sent"] = 1  # the stray digest is another story's
    return story, want
