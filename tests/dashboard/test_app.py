"""The dashboard over HTTP (no browser): access control when exposed, read-only beside a running
writer, every table as CSV, bad filters as 400s, the static report's links."""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import httpx
import pytest

from pipeline.config import DashboardConfig
from pipeline.dashboard.serve import Access, DashboardServer, resolve_access
from pipeline.errors import ConfigError
from pipeline.store import Store

pytestmark = pytest.mark.slow
TOKEN = "t0ken-for-the-tests-0123456789"


def test_binding_beyond_loopback_needs_a_token_or_basic_auth():
    dash = DashboardConfig()
    assert not resolve_access("127.0.0.1", dash, env={}).required
    with pytest.raises(ConfigError, match="NEWSMON_DASHBOARD_TOKEN"):
        resolve_access("0.0.0.0", dash, env={})
    assert resolve_access("0.0.0.0", dash, env={"NEWSMON_DASHBOARD_TOKEN": TOKEN}).token == TOKEN
    with pytest.raises(ConfigError, match="shorter than 16"):
        resolve_access("0.0.0.0", dash, env={"NEWSMON_DASHBOARD_TOKEN": "short"})
    basic = DashboardConfig(basic_user="ana")
    with pytest.raises(ConfigError, match="NEWSMON_DASHBOARD_PASSWORD"):
        resolve_access("10.0.0.5", basic, env={})
    assert resolve_access("10.0.0.5", basic, env={"NEWSMON_DASHBOARD_PASSWORD": "pw"}).basic == ("ana", "pw")


def test_dashboard_command_refuses_an_open_public_bind(world_store, tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "dashboard", "--data-dir", str(world_store),
                        "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 2 and "no access control" in r.stderr


def test_token_and_basic_auth_are_enforced(world_store):
    # 127.0.0.2 is loopback too; what is checked here is the app's enforcement once auth is on.
    with DashboardServer(world_store, "127.0.0.1", 0, Access(token=TOKEN)) as srv, httpx.Client() as c:
        assert c.get(srv.url).status_code == 401
        assert c.get(srv.url, headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        assert c.get(srv.url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        r = c.get(srv.url + f"stories?token={TOKEN}")
        assert r.status_code == 200
        assert c.get(srv.url + "feeds").status_code == 200  # the cookie set from ?token= carries on
    with DashboardServer(world_store, "127.0.0.1", 0, Access(basic=("ana", "s3cret"))) as srv, httpx.Client() as c:
        r = c.get(srv.url)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
        good = base64.b64encode(b"ana:s3cret").decode()
        assert c.get(srv.url, headers={"Authorization": f"Basic {good}"}).status_code == 200
        bad = base64.b64encode(b"ana:nope").decode()
        assert c.get(srv.url, headers={"Authorization": f"Basic {bad}"}).status_code == 401


def test_reads_beside_a_writer_and_sees_its_commits(world_store, tmp_path):
    from tests.dashboard.conftest import copy_store

    store_dir = copy_store(world_store, tmp_path / "s")
    writer = Store.open(store_dir)  # holds the writer lock, as the daemon does
    try:
        with DashboardServer(store_dir, "127.0.0.1", 0, Access()) as srv, httpx.Client() as c:
            before = c.get(srv.url + "csv/overview/overview_all.csv").text
            assert c.get(srv.url).status_code == 200
            with writer.transaction() as con:
                con.execute("UPDATE lake.rollup_counts SET articles = articles + 1000 WHERE grain = 'day' AND dim = 'all'")
            after = c.get(srv.url + "csv/overview/overview_all.csv").text
            assert before != after
            col = next(csv.reader(io.StringIO(after)))
            i = col.index("articles")
            a = [int(r[i]) for r in list(csv.reader(io.StringIO(before)))[1:]]
            b = [int(r[i]) for r in list(csv.reader(io.StringIO(after)))[1:]]
            assert [y - x for x, y in zip(a, b, strict=True)] == [1000] * len(a)
    finally:
        writer.close()


def test_the_dashboard_cannot_write(world_store):
    from pipeline.dashboard.app import Readers
    from pipeline.dashboard.queries import Query

    readers = Readers(Path(world_store))
    try:
        with pytest.raises(Exception, match="(?i)read.only|read-only"):
            readers.run(Query("x", "x", "DELETE FROM articles"))
    finally:
        readers.close()


def test_every_table_downloads_as_csv_and_bad_filters_are_400(dashboard):
    with httpx.Client() as c:
        for page in ("", "stories", "topics", "feeds"):
            html = c.get(dashboard.url + page).text
            links = re.findall(r'href="(/csv/[^"]+)"', html)
            assert links, page
            for link in links:
                r = c.get(dashboard.url.rstrip("/") + link.replace("&amp;", "&"))
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), link
                assert r.text.splitlines()[0]
            assert html.count('<details class="sql">') == html.count('class="block ')  # a query under every block
        r = c.get(dashboard.url + "?from=2026-13-01")
        assert r.status_code == 400 and "bad filter" in r.text
        assert c.get(dashboard.url + "story/no-such-story").status_code == 404
        assert c.get(dashboard.url + "assets/../app.py").status_code == 404
        # A page is whole: charts inline as SVG, the style sheet inline, no script, nothing to fetch.
        r = c.get(dashboard.url)
        assert "<svg" in r.text and "<style>" in r.text and "<script" not in r.text
        assert not re.search(r'<link rel="stylesheet"|\ssrc="', r.text)
        assert "script-src" not in r.headers["content-security-policy"]
        assert "default-src 'none'" in r.headers["content-security-policy"]


def test_report_links_resolve_to_files(world_store, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", "--data-dir", str(world_store), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    html_files = sorted(out.glob("*.html"))
    assert {"index.html", "stories.html", "topics.html", "feeds.html"} <= {p.name for p in html_files}
    assert any(p.name.startswith("story-") for p in html_files)
    for p in html_files:
        text = p.read_text(encoding="utf-8")
        for ref in re.findall(r'(?:href|src)="([^"#]+)"', text):
            if ref.startswith(("http://", "https://", "data:")):
                assert not ref.startswith("http") or 'rel="noreferrer' in text  # only article links go out
                continue
            assert (out / ref).exists(), f"{p.name}: {ref}"
        assert "<script src=\"http" not in text


def test_demo_serve_ends_on_the_dashboard_of_the_demo_store(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    ddir = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "demo", "--serve", "--port", "0", "--data-dir", str(ddir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        url = None
        deadline = time.monotonic() + 600  # generous: the demo runs the whole pipeline first
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line)
            m = re.search(r"newsmon dashboard on (http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, "".join(lines)
        with httpx.Client() as c:
            r = c.get(url)
            assert r.status_code == 200 and "Overview" in r.text
            with Store.open(ddir, read_only=True) as s:
                alerts = s.scalar("SELECT count(*) FROM alert_outbox")
            totals = list(csv.DictReader(io.StringIO(c.get(url + "csv/overview/overview_totals.csv").text)))
            assert sum(int(t["alerts"]) for t in totals) == alerts > 0  # the demo's data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            raise
    assert rc == 0


def test_story_page_shows_the_notification_log(world_store, tmp_path):
    from collections import Counter

    from tests.dashboard.conftest import add_notification_log, copy_store

    store_dir = copy_store(world_store, tmp_path / "s")
    story, want = add_notification_log(store_dir)
    with DashboardServer(store_dir, "127.0.0.1", 0, Access()) as srv, httpx.Client() as c:
        html = c.get(f"{srv.url}story/{story}").text
        assert '<table data-name="notifications">' in html and "FROM alert_notifications" in html
        r = c.get(f"{srv.url}csv/story/{story}/notifications.csv")
        assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert Counter(f"{x['kind']}/{x['status']}" for x in rows) == want
    assert {"reply", "update", "digest"} <= {x["kind"] for x in rows} and "silenced" in {x["status"] for x in rows}
    reply = next(x for x in rows if x["kind"] == "reply")
    assert reply["seq"] == "1" and reply["thread"]  # the thread it replied in
