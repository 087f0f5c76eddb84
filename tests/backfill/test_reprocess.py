"""reprocess on the demo's store: every stored article has its fetched page (table pages); after an
"extractor upgrade" (here: the stored texts made stale, as an older extractor would have left
them) `newsmon reprocess` extracts the stored pages again with the pipeline's own extractor,
updates the articles, and re-matches them as backfill, never alerted; killed with SIGKILL between
a chunk's commit and its checkpoint, a rerun resumes and ends with the same rows as an
uninterrupted run; articles whose page was pruned get a clear message."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.backfill import checkpoint_path
from pipeline.models import ItemResult, from_dict, to_json
from pipeline.pages import pack_page, unpack_page
from pipeline.store import Store
from tests.dashboard.conftest import copy_store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# Runs the real command in a child process that SIGKILLs itself on its Nth checkpoint write, i.e.
# after that chunk's transaction committed and before its checkpoint is on disk.
KILLED_RUN = """
import os, signal, sys
import pipeline.backfill as bf
real, calls = bf.write_atomic, [0]
def write(path, text):
    calls[0] += 1
    if calls[0] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, text)
bf.write_atomic = write
from pipeline.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    from pipeline.demo import run_demo

    d = tmp_path_factory.mktemp("reprocess") / "store"
    assert run_demo(data_dir=str(d), out=io.StringIO()) == 0
    return d


def _state(store_dir: Path) -> tuple[list, list, int]:
    with Store.open(store_dir, read_only=True) as s:
        _, arts = s.query("SELECT article_id, title, text, text_hash, story_id FROM articles ORDER BY 1")
        _, matches = s.query("SELECT article_id, topic, level, coalesce(backfill, false) FROM topic_matches ORDER BY 1, 2")
        outbox = s.scalar("SELECT count(*) FROM alert_outbox")
    return arts, matches, outbox


def _make_stale(store_dir: Path) -> None:
    """What an older extractor would have left: other texts and titles, and so no topic matches."""
    with Store.open(store_dir) as s, s.transaction() as con:
        con.execute("UPDATE lake.articles SET title = 'old ' || article_id, text = 'boilerplate only', text_hash = 'x'")
        con.execute("DELETE FROM lake.topic_matches")


def _cli(store_dir: Path, *extra: str, killed_at: int | None = None) -> subprocess.CompletedProcess:
    args = ["reprocess", "--data-dir", str(store_dir), "--since", "30d", "--chunk", "2", *extra]
    cmd = [sys.executable, "-c", KILLED_RUN, str(killed_at), *args] if killed_at else [
        sys.executable, "-m", "pipeline.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_every_stored_article_has_its_page(demo_store):
    with Store.open(demo_store, read_only=True) as s:
        _, rows = s.query("SELECT a.article_id, a.title, p.codec, p.html_bytes, p.body, p.stored_at = a.stored_at "
                          "FROM articles a LEFT JOIN pages p USING (article_id)")
    assert rows
    for aid, title, codec, size, body, same_batch in rows:
        assert body is not None, f"article {aid} has no page"
        html = unpack_page(bytes(body), codec)
        assert len(html.encode()) == size and len(body) < size  # compressed, size recorded
        assert title.split()[0] in html
        assert same_batch  # written by the batch that stored the article


def test_page_survives_the_shard_round_trip():
    html = "<html><body><p>Zürich – ünïcode page</p></body></html>" * 20
    r = {"item": {"item_id": "i", "feed_id": "f", "guid": "g", "url": "u", "title": "t", "summary": "",
                  "published": None, "seen_at": datetime.now(UTC).isoformat()},
         "disposition": "stored",
         "article": {"article_id": "a", "item_id": "i", "feed_id": "f", "url": "u", "canonical_url": "u",
                     "title": "t", "text": "x", "published": None, "author": None, "sitename": None,
                     "language": None, "text_hash": "h", "fetched_at": datetime.now(UTC).isoformat(),
                     "page": None}}
    res = from_dict(ItemResult, r)
    from dataclasses import replace

    res = replace(res, article=replace(res.article, page=pack_page(html)))
    back = from_dict(ItemResult, json.loads(to_json(res)))
    assert back == res and unpack_page(back.article.page) == html


def test_killed_reprocess_resumes_and_ends_as_an_uninterrupted_run(demo_store, tmp_path):
    truth, live_matches, outbox_before = _state(demo_store)
    assert len(truth) >= 6  # enough for three chunks of two
    full, cut = copy_store(demo_store, tmp_path / "full"), copy_store(demo_store, tmp_path / "cut")
    for d in (full, cut):
        _make_stale(d)

    r = _cli(full)
    assert r.returncode == 0, r.stderr
    assert f"{len(truth)} articles changed and were updated" in r.stdout
    want_arts, want_matches, outbox = _state(full)
    # The pipeline's extractor on the stored pages gives back what the pipeline stored.
    assert want_arts == truth
    assert {m[:3] for m in want_matches} == {m[:3] for m in live_matches}  # the same matches found again
    assert all(m[3] is True for m in want_matches)  # ... marked backfill
    assert outbox == outbox_before  # never alerted
    with Store.open(full, read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM articles WHERE reextracted_at IS NOT NULL "
                        "AND extractor LIKE 'trafilatura %'") == len(truth)

    r = _cli(cut, killed_at=2)  # killed after chunk 2 committed, before its checkpoint
    assert r.returncode == -9, (r.returncode, r.stderr)
    ck = json.loads(checkpoint_path(cut, "reprocess").read_text())
    assert ck["done"] == 2 and not ck["finished"]
    r = _cli(cut)
    assert r.returncode == 0, r.stderr
    assert "(resumed after 2)" in r.stdout and "100%" in r.stderr  # progress bar
    got_arts, got_matches, outbox = _state(cut)
    assert got_arts == want_arts
    assert got_matches == want_matches  # none twice
    assert outbox == outbox_before


def test_pruned_pages_get_a_clear_message(demo_store, tmp_path):
    from pipeline.store.maintenance import MaintenanceSettings, maintain

    store = copy_store(demo_store, tmp_path / "s")
    with Store.open(store) as s:
        n = s.scalar("SELECT count(*) FROM articles")
        # The maintenance job's prune step, with a retention the stored pages are past.
        report = maintain(s, MaintenanceSettings(keep_pages=timedelta(days=1)), datetime.now(UTC) + timedelta(days=2))
        assert any(st[0] == "prune_pages" and st[3].startswith(f"{n} pages") for st in report.steps), report.steps
        assert s.scalar("SELECT count(*) FROM pages") == 0
    r = _cli(store)
    assert r.returncode == 0, r.stderr
    assert f"{n} articles have no stored page any more (pages are kept for 30 days, store.keep_pages_days" in r.stdout
    assert "0 articles changed" in r.stdout
