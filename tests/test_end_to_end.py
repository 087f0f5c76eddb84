"""The whole pipeline through the real daemon code, over loopback only.

Feeds and article pages come from the demo's HTTP server on 127.0.0.1 (the seed documents plus a
reprint, a tracking-parameter duplicate and near misses); alerts go to a real SMTP server
(STARTTLS + AUTH) and a real webhook receiver; a second process queries the store while the
daemon holds it open.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from pipeline import config
from pipeline.daemon import Daemon
from pipeline.demo import DemoServer
from tests.alert.servers import SmtpTestServer, WebhookReceiver
from tests.world import write_world_files

pytestmark = pytest.mark.slow

SEED_SLUGS = {
    "000": "putin-unlikely-to-bow-to-ultimatum",
    "001": "kallor-putin-ger-inte-efter",
    "002": "maximalist-demands-istanbul",
    "003": "putin-hardball-before-trump-call",
    "004": "four-reasons-putin-wont-end-war",
}


@pytest.fixture
def world(tmp_path: Path):
    with DemoServer() as feeds, SmtpTestServer(tmp_path / "smtp") as smtp, WebhookReceiver() as hook:
        sources, settings = write_world_files(tmp_path, feeds, smtp)
        env = {"NEWSMON_SLACK_WEBHOOK_URL": hook.url, "NEWSMON_SMTP_PASSWORD": smtp.password,
               # NEWSMON_TEST_STORE=remote (tests/conftest.py): the store on PostgreSQL + S3
               **{k: v for k, v in os.environ.items() if k.startswith("NEWSMON_STORE_")}}
        cfg = config.load(settings, sources_path=sources, data_dir=tmp_path / "data", env=env)
        yield cfg, feeds, smtp, hook


def story_of(daemon: Daemon, slug: str) -> str:
    _, rows = daemon.store.query(
        "SELECT DISTINCT m.story_id FROM story_members m JOIN items i USING (item_id) WHERE i.url LIKE ?", [f"%/{slug}.html%"]
    )
    assert len(rows) == 1, (slug, rows)
    return rows[0][0]


def test_feed_to_alert_end_to_end(world, caplog: pytest.LogCaptureFixture) -> None:
    cfg, feeds, smtp, hook = world
    caplog.set_level(logging.DEBUG)  # every logger, every level: no secret may appear anywhere
    daemon = Daemon(cfg)
    try:
        polled, batches, sent = daemon.run_once()
        assert polled.feeds == 5 and polled.errors == 0
        assert polled.new_items == 10

        # Every item got exactly one disposition; the tracking-parameter link is the same article.
        _, rows = daemon.store.query("SELECT disposition, count(*) FROM items GROUP BY ALL ORDER BY 1")
        disp = dict(rows)
        assert sum(disp.values()) == 10 and "pending" not in disp
        assert disp["duplicate_url"] == 1
        assert disp["exact_copy"] == 1  # the verbatim reprint folds into the original article

        # Seed story grouping: 000 and 001 one story; 002, 003, 004 three others.
        s = {k: story_of(daemon, slug) for k, slug in SEED_SLUGS.items()}
        assert s["000"] == s["001"]
        assert len({s["000"], s["002"], s["003"], s["004"]}) == 4
        _, outlets = daemon.store.query(
            "SELECT string_agg(DISTINCT sitename, ', ' ORDER BY sitename) FROM story_members WHERE story_id = ?", [s["000"]]
        )
        assert outlets[0][0] == "Market Ledger, Nordic Courier, Wire Desk"  # original, reprint, translation
        _, rows = daemon.store.query(
            "SELECT i.feed_id FROM items i WHERE i.disposition = 'duplicate_url'"
        )
        assert rows == [("market-ledger",)]  # the tracking-parameter link, not the original

        # Topic matches carry evidence.
        _, rows = daemon.store.query(
            "SELECT topic, evidence FROM topic_matches WHERE story_id = ? AND level = 'alert'", [s["000"]]
        )
        topics = {t for t, _ in rows}
        assert {"ultimatum", "sanctions"} <= topics
        for _, ev in rows:
            ev = json.loads(ev)
            assert ev and all({"kind", "detail", "zone", "spans"} <= set(e) for e in ev)
        # Near misses do not alert.
        _, rows = daemon.store.query(
            "SELECT a.title FROM alert_outbox o JOIN articles a USING (article_id)"
        )
        titles = " ".join(r[0] for r in rows)
        assert "striker" not in titles and "Iran" not in titles and "Harvest" not in titles

        # Exactly one alert per (topic, story), on each channel.
        _, rows = daemon.store.query("SELECT topic, story_id FROM alert_outbox")
        pairs = {(t, sid) for t, sid in rows}
        assert len(pairs) == len(rows)
        assert len(smtp.messages) == len(pairs)
        assert len(hook.bodies) == len(pairs)
        assert sent.sent == 2 * len(pairs)
        assert all(m.tls and m.authenticated for m in smtp.messages)
        subjects = sorted(str(make_header(decode_header(m.message["Subject"]))).strip() for m in smtp.messages)
        assert sum(subj.startswith("[newsmon] ultimatum:") for subj in subjects) == 1, subjects  # not one per copy
        assert all("blocks" in b for b in hook.bodies)

        # A second cycle: feeds unchanged -> nothing new, no alert repeated.
        polled2, batches2, sent2 = daemon.run_once()
        assert polled2.new_items == 0 and batches2 == [] and sent2.sent == 0
        assert len(smtp.messages) == len(pairs) and len(hook.bodies) == len(pairs)

        # An analyst's process reads the live store while the daemon holds it.
        out = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "query", "--data-dir", str(cfg.data_dir), "--format", "json",
             "SELECT count(*) AS articles, (SELECT count(*) FROM alert_outbox) AS alerts FROM articles"],
            capture_output=True, text=True, timeout=120, check=True,
        )
        row = json.loads(out.stdout)
        assert row == {"articles": daemon.store.counts()["articles"], "alerts": len(pairs)}

        # Decisions are logged, secrets never.
        assert "feed_polled" in caplog.text and "batch_loaded" in caplog.text and "alert_sent" in caplog.text
        ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("werkzeug", "mail.log")))
        assert hook.SECRET not in ours and smtp.password not in ours  # (the test receivers log their own requests)
    finally:
        daemon.close()


def test_shards_of_a_killed_batch_are_cleared_at_start(world) -> None:
    cfg, *_ = world
    stale = cfg.data_dir / "batches" / "20250101T000000-deadbeef"
    stale.mkdir(parents=True)
    (stale / "results-00000-of-00001.jsonl").write_text("{}\n", encoding="utf-8")
    daemon = Daemon(cfg)
    try:
        assert not stale.exists()
    finally:
        daemon.close()
