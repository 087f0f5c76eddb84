"""The command line: batch entry points over JSON lines, query output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import format_rows, main

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


def seed_docs(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for p in sorted(SEEDS.glob("0*.txt")):
            text = p.read_text(encoding="utf-8")
            fh.write(json.dumps({"id": p.name, "text": text, "title": text.splitlines()[0][:120]}) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_dedup_on_the_seeds_groups_story_a_only(tmp_path: Path) -> None:
    out = tmp_path / "stories.jsonl"
    assert main(["dedup", "--in", str(seed_docs(tmp_path)), "--out", str(out)]) == 0
    recs = {r["id"][:3]: r for r in read_jsonl(out)}
    assert len(recs) == 5 and all(set(r) == {"id", "story_id", "link"} for r in recs.values())
    assert recs["000"]["story_id"] == recs["001"]["story_id"]
    assert recs["001"]["link"] == "rewrite"
    assert len({recs[k]["story_id"] for k in ("000", "002", "003", "004")}) == 4


def test_match_on_the_seeds_emits_evidence(tmp_path: Path, seed_labels: dict) -> None:
    out = tmp_path / "matches.jsonl"
    assert main(["match", "--in", str(seed_docs(tmp_path)), "--out", str(out)]) == 0
    recs = read_jsonl(out)
    got = {(r["id"], r["topic"]) for r in recs}
    for topic, lab in seed_labels["topics"].items():
        for doc in lab["about"]:
            assert (doc, topic) in got, (doc, topic)
        for doc in lab["mentions_only"]:
            assert (doc, topic) not in got, (doc, topic)
    assert all(r["evidence"] and {"kind", "detail", "zone", "spans"} <= set(r["evidence"][0]) for r in recs)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"id": "a", "text": "x"}\n{"id": "b", "text": \n', "docs.jsonl:2: not valid JSON"),
        ('{"id": "a", "text": "x"}\n{"text": "y"}\n', "docs.jsonl:2: missing 'id'"),
        ('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', "docs.jsonl:2: duplicate id 'a'"),
        ('{"id": "a", "text": "x", "published": "yesterday"}\n', "docs.jsonl:1: 'published' must be ISO 8601"),
    ],
)
def test_bad_input_names_file_and_line_and_exits_2(tmp_path: Path, capsys, content: str, words: str) -> None:
    inp = tmp_path / "docs.jsonl"
    inp.write_text(content, encoding="utf-8")
    assert main(["dedup", "--in", str(inp), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert words in capsys.readouterr().err


def test_query_formats() -> None:
    cols, rows = ["a", "b"], [(1, "x,y"), (None, "z")]
    assert format_rows(cols, rows, "csv") == 'a,b\n1,"x,y"\n,z'
    assert [json.loads(x) for x in format_rows(cols, rows, "json").splitlines()] == [{"a": 1, "b": "x,y"}, {"a": None, "b": "z"}]
    table = format_rows(cols, rows, "table")
    assert "| a | b   |" in table and "| 1 | x,y |" in table and "(2 rows)" in table


def test_query_without_a_store_says_what_to_do(tmp_path: Path, capsys) -> None:
    assert main(["query", "--data-dir", str(tmp_path / "none"), "SELECT 1"]) == 1
    assert "newsmon demo" in capsys.readouterr().err


def test_bad_sql_exits_2(tmp_path: Path, capsys) -> None:
    from pipeline.store import Store

    Store.open(tmp_path / "d").close()
    assert main(["query", "--data-dir", str(tmp_path / "d"), "SELEC nothing"]) == 2
    assert "syntax error" in capsys.readouterr().err.lower()


def test_topics_test_explains_and_check_runs_examples(capsys) -> None:
    assert main(["topics", "test", "ultimatum", "--text", str(SEEDS / "000_9b9ad37e8db9c7df.txt")]) == 0
    out = capsys.readouterr().out
    assert "topic ultimatum: score" in out and "-> alert" in out and "ultimatum-to-russia" in out
    assert main(["topics", "check"]) == 0
    out = capsys.readouterr().out
    assert "ultimatum:" in out and "FAIL" not in out
    assert main(["topics", "test", "no-such-topic", "--text", str(SEEDS / "000_9b9ad37e8db9c7df.txt")]) == 2
    assert "known topics" in capsys.readouterr().err


def test_topics_backtest_counts_alerts_without_sending(tmp_path: Path, capsys) -> None:
    from datetime import UTC, datetime

    from pipeline.models import Article, FeedItem, FeedState, ItemResult, StoryAssignment
    from pipeline.store import Store

    now = datetime(2025, 8, 1, tzinfo=UTC)
    text = (SEEDS / "000_9b9ad37e8db9c7df.txt").read_text(encoding="utf-8")
    with Store.open(tmp_path / "d") as s:
        items = [FeedItem(f"i{n}", "f", f"g{n}", f"https://e.org/{n}", "t", "", now, now) for n in range(3)]
        s.record_poll(FeedState("f"), fetched_at=now, outcome="ok", status=200, error_kind=None, error=None, duration_ms=0, items=items)
        results = [
            ItemResult(it, "stored", None,
                       Article(f"a{n}", it.item_id, "f", it.url, it.url, "Putin and the ultimatum", text, now, None, "S", None, f"h{n}", now),
                       StoryAssignment(f"a{n}", "s1" if n < 2 else "s2", "original", None, 1.0))
            for n, it in enumerate(items)
        ]
        s.load_batch("b", results, now=now, runner="t", started_at=now)
    assert main(["topics", "backtest", "ultimatum", "--data-dir", str(tmp_path / "d"), "--since", "2025-07-01"]) == 0
    out = capsys.readouterr().out
    assert "| 2025-08-01 | 3        | 3       | 2      |" in out
    assert "2 story alerts now against 0 sent; 2 would appear" in out
    assert "nothing was sent or stored" in out
    with Store.open(tmp_path / "d", read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM alert_outbox") == 0


def test_status_flags_failing_feeds(tmp_path: Path, capsys) -> None:
    from datetime import UTC, datetime

    from pipeline.config import Source
    from pipeline.models import FeedState
    from pipeline.store import Store

    now = datetime.now(UTC)
    with Store.open(tmp_path / "d") as s:
        s.sync_feeds([Source(id="good", url="https://e.org/a"), Source(id="bad", url="https://e.org/b")], now)
        s.record_poll(FeedState("good", last_success_at=now), fetched_at=now, outcome="ok", status=200,
                      error_kind=None, error=None, duration_ms=1)
        s.record_poll(FeedState("bad", error_streak=3, last_error_kind="http_5xx", last_error="503 from server"),
                      fetched_at=now, outcome="error", status=503, error_kind="http_5xx", error="503", duration_ms=1)
    assert main(["status", "--data-dir", str(tmp_path / "d"), "--fail-on-error"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("feed ") and "health" in lines[0]
    assert lines[1].startswith("bad ") and "failing" in lines[1] and "http_5xx" in lines[1]
    assert "feeds: failing 1, ok 1  (times in UTC)" in out


def test_status_fits_100_columns_and_says_what_it_does_not_know(tmp_path: Path, capsys) -> None:
    """~220 columns with microsecond timestamps; a never-fetched feed shown as ok; 0.3 items/day
    for a feed one hour old. --wide and -f json keep every column."""
    from datetime import UTC, datetime, timedelta

    from pipeline.config import Source
    from pipeline.models import FeedItem, FeedState
    from pipeline.store import Store

    now = datetime.now(UTC)
    long_id = "a-feed-with-a-very-long-identifier-" + "x" * 20
    with Store.open(tmp_path / "d") as s:
        s.sync_feeds([Source(id=long_id, url="https://e.org/a"), Source(id="held", url="https://e.org/b"),
                      Source(id="new", url="https://e.org/c")], now)
        items = [FeedItem(f"i{n}", "new", f"g{n}", f"https://e.org/{n}", "t", "", now, now - timedelta(minutes=30))
                 for n in range(2)]
        s.record_poll(FeedState("new", last_success_at=now), fetched_at=now, outcome="ok", status=200,
                      error_kind=None, error=None, duration_ms=1, items=items)
        s.record_poll(FeedState(long_id, error_streak=2, last_error_kind="http_5xx", last_error="x" * 300),
                      fetched_at=now, outcome="error", status=503, error_kind="http_5xx", error="503", duration_ms=1)
        s.record_poll(FeedState("held"), fetched_at=now, outcome="host_backoff", status=None, error_kind=None,
                      error=None, duration_ms=0)
    assert main(["status", "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100, out
    rows = {line.split()[0]: line for line in out.splitlines()[1:4]}
    assert "never fetched" in rows["held"]
    assert rows["new"].split()[1] == "ok" and "0.3" not in rows["new"]  # no rate from one hour
    assert ".0000" not in out and "+00:00" not in out  # times to the minute
    assert main(["status", "--data-dir", str(tmp_path / "d"), "--wide"]) == 0
    wide = capsys.readouterr().out
    assert "usual_gap_h" in wide and "next_due_at" in wide
    assert main(["status", "--data-dir", str(tmp_path / "d"), "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    feeds = {f["feed_id"]: f for f in doc["feeds"]}
    assert feeds[long_id]["last_error"].startswith("x") and feeds["new"]["items_per_day"] is None
    assert doc["pipeline"]["daemon_running"] is False and doc["pipeline"]["pending"] == 2


@pytest.mark.slow
def test_run_once_leaves_auto_disabled_feeds_to_their_retry_schedule(tmp_path: Path, capsys) -> None:
    """`run --once` polls every enabled feed, but an auto-disabled one only when its rare retry is
    due (as the scheduler does), and it says how many it skipped."""
    from datetime import UTC, datetime, timedelta

    from pipeline.config import Source
    from pipeline.models import FeedState
    from pipeline.store import Store
    from tests.fetch.faultserver import FaultServer

    with FaultServer("127.0.0.11") as srv:
        srv.feed("/ok.xml", items=1)
        srv.status("/gone.xml", 410)
        sources = tmp_path / "sources.yaml"
        sources.write_text(f"feeds:\n  - id: ok\n    url: {srv.url('/ok.xml')}\n"
                           f"  - id: gone\n    url: {srv.url('/gone.xml')}\n", encoding="utf-8")
        settings = tmp_path / "newsmon.yaml"
        settings.write_text("fetch:\n  allow_private_addresses: true\n  per_host_min_gap_seconds: 0\n", encoding="utf-8")
        data = tmp_path / "data"
        now = datetime.now(UTC)
        disabled = FeedState("gone", last_status=410, last_error_kind="http_4xx", error_streak=5, permanent_streak=5,
                             disabled=True, next_due_at=now + timedelta(hours=20))
        with Store.open(data) as s:
            s.sync_feeds([Source(id="ok", url=srv.url("/ok.xml")), Source(id="gone", url=srv.url("/gone.xml"))], now)
            s.record_poll(disabled, fetched_at=now, outcome="error", status=410, error_kind="http_4xx", error="410",
                          duration_ms=1)
        argv = ["run", "--once", "--config", str(settings), "--sources", str(sources), "--data-dir", str(data)]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert srv.hits_for("/gone.xml") == 0 and srv.hits_for("/ok.xml") == 1
        assert "polled 1 feeds" in out and "skipped 1 auto-disabled feed (retried every 24 h" in out

        # Its retry time has come: this run polls it (and it stays disabled, still 410).
        with Store.open(data) as s:
            s.record_poll(FeedState(**{**disabled.__dict__, "next_due_at": now - timedelta(minutes=1)}),
                          fetched_at=now, outcome="error", status=410, error_kind="http_4xx", error="410", duration_ms=1)
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert srv.hits_for("/gone.xml") == 1 and "skipped" not in out
        with Store.open(data, read_only=True) as s:
            assert s.feed_states()["gone"].disabled


def test_status_counts_and_lists_dead_letters(tmp_path: Path, capsys) -> None:
    from datetime import UTC, datetime

    from pipeline.models import FeedItem, FeedState, ItemResult
    from pipeline.store import Store

    now = datetime.now(UTC)
    with Store.open(tmp_path / "d") as s:
        items = [FeedItem(f"i{n}", "f", f"g{n}", f"https://e.org/{n}", "t", "", now, now) for n in range(3)]
        s.record_poll(FeedState("f"), fetched_at=now, outcome="ok", status=200, error_kind=None, error=None,
                      duration_ms=0, items=items)
        s.load_batch("b", [ItemResult(items[0], "download_failed", "http_4xx: https://e.org/0 answered 404"),
                           ItemResult(items[1], "extract_failed", "ParserError: Document is empty"),
                           ItemResult(items[2], "retry", "timeout: slow")], now=now, runner="t", started_at=now)
    assert main(["status", "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "dead letters: 2 (list them: newsmon status --dead-letters)" in out
    assert "downloads waiting for a retry: 1" in out
    assert main(["status", "--data-dir", str(tmp_path / "d"), "--dead-letters", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((r["key"], r["stage"], r["reason"], r["attempts"]) for r in rows) == [
        ("i0", "download", "permanent_error", 1), ("i1", "extract", "extract_error", 1)]
    assert {r["url"] for r in rows} == {"https://e.org/0", "https://e.org/1"}
    assert main(["status", "--data-dir", str(tmp_path / "d"), "--dead-letters", "--limit", "1"]) == 0
    assert "showing the latest 1 of 2 dead letters" in capsys.readouterr().out


def test_dedup_refuses_to_overwrite_its_input_and_writes_atomically(tmp_path: Path, capsys, monkeypatch) -> None:
    docs = seed_docs(tmp_path)
    before = docs.read_text(encoding="utf-8")
    assert main(["dedup", "--in", str(docs), "--out", str(docs)]) == 2
    assert "--out is the --in file" in capsys.readouterr().err and docs.read_text(encoding="utf-8") == before
    (tmp_path / "link.jsonl").symlink_to(docs)
    assert main(["dedup", "--in", str(docs), "--out", str(tmp_path / "link.jsonl")]) == 2
    assert "--out is the --in file" in capsys.readouterr().err
    # A write that fails half-way (a full disk) leaves the previous output whole, and no temp file.
    out = tmp_path / "stories.jsonl"
    out.write_text("previous result\n", encoding="utf-8")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("pipeline.fileio.os.fsync", full_disk)
    assert main(["dedup", "--in", str(docs), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"newsmon: cannot write {out}: No space left on device"
    assert out.read_text(encoding="utf-8") == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl", "link.jsonl", "stories.jsonl"]


@pytest.mark.parametrize("target", ["file", "under-a-file"])
def test_runtime_io_errors_are_one_line_and_exit_1(tmp_path: Path, capsys, target: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x", encoding="utf-8")
    path = blocker if target == "file" else blocker / "data"
    sources = tmp_path / "sources.yaml"
    sources.write_text("feeds:\n  - id: a\n    url: https://example.org/a.xml\n", encoding="utf-8")
    assert main(["run", "--once", "--sources", str(sources), "--data-dir", str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and str(blocker) in err
    # check-config no longer says ok for a data directory the daemon cannot use
    assert main(["check-config", "--sources", str(sources), "--data-dir", str(path)]) == 2
    assert "data_dir: " in capsys.readouterr().err
    assert main(["dedup", "--in", str(seed_docs(tmp_path)), "--out", str(blocker / "out.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"newsmon: cannot write {blocker / 'out.jsonl'}") and len(err.strip().splitlines()) == 1


def test_a_metrics_port_in_use_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        sources = tmp_path / "sources.yaml"
        sources.write_text("feeds:\n  - id: a\n    url: https://example.org/a.xml\n", encoding="utf-8")
        settings = tmp_path / "newsmon.yaml"
        settings.write_text(f"metrics_port: {busy.getsockname()[1]}\n", encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--config", str(settings), "--sources", str(sources),
             "--data-dir", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        busy.close()
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert last.startswith("newsmon: cannot serve metrics on 127.0.0.1:") and "set `metrics_port`" in last


@pytest.mark.slow
def test_run_once_exits_1_when_every_feed_failed(tmp_path: Path, capsys) -> None:
    from tests.fetch.faultserver import FaultServer

    with FaultServer("127.0.0.12") as srv:
        srv.status("/a.xml", 500)
        srv.status("/b.xml", 404)
        sources = tmp_path / "sources.yaml"
        sources.write_text(f"feeds:\n  - id: a\n    url: {srv.url('/a.xml')}\n  - id: b\n    url: {srv.url('/b.xml')}\n",
                           encoding="utf-8")
        settings = tmp_path / "newsmon.yaml"
        settings.write_text("fetch:\n  allow_networks: [127.0.0.12/32]\n  per_host_min_gap_seconds: 0\n", encoding="utf-8")
        argv = ["run", "--once", "--config", str(settings), "--sources", str(sources), "--data-dir", str(tmp_path / "d")]
        assert main(argv) == 1
        captured = capsys.readouterr()
        assert "every feed polled failed (2 of 2)" in captured.err
        assert "feed a: http_5xx" in captured.out and "feed b: http_4xx" in captured.out
        srv.feed("/a.xml")  # one feed answers again: the run did its job
        assert main(argv) == 0


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT * FROM feeds) TO '{out}'",
        "SELECT 1; COPY (SELECT 1) TO '{out}'",
        "EXPORT DATABASE '{dir}'",
        "INSTALL httpfs",
        "LOAD '{dir}/x.duckdb_extension'",
        "ATTACH '{out}' AS other",
        "CREATE TABLE memory.main.t AS SELECT 1",
    ],
)
def test_query_is_read_only_in_every_sense(tmp_path: Path, capsys, sql: str) -> None:
    """It refused writes to the store, but COPY ... TO '/any/path' wrote files."""
    from pipeline.store import Store

    Store.open(tmp_path / "d").close()
    out = tmp_path / "d" / "lake" / "leak.csv"
    argv = ["query", "--data-dir", str(tmp_path / "d"), sql.format(out=out, dir=tmp_path / "exported")]
    assert main(argv) == 2
    assert "newsmon query only reads" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "exported").exists()


def test_a_reader_connection_cannot_touch_files_even_through_select(tmp_path: Path) -> None:
    import duckdb

    from pipeline.store import Store

    Store.open(tmp_path / "d").close()
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n", encoding="utf-8")
    with Store.open(tmp_path / "d", read_only=True) as r:
        assert r.scalar("SELECT count(*) FROM feeds") == 0
        with pytest.raises(duckdb.PermissionException):
            r.query(f"SELECT * FROM read_csv('{secret}')")
        with pytest.raises(duckdb.Error, match="locked"):
            r.query("SET enable_external_access = true")
        with pytest.raises(duckdb.PermissionException):
            r.query(f"COPY (SELECT 1) TO '{tmp_path / 'x.csv'}'")
    assert not (tmp_path / "x.csv").exists()


def test_run_once_with_a_broken_pipeline_is_one_line_and_exit_1(tmp_path: Path, capsys, monkeypatch) -> None:
    from pipeline import daemon
    from tests.fetch.faultserver import FaultServer

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("Traceback (most recent call last):\n  ...\nValueError: bad topic [while running 'MatchTopics']")

    monkeypatch.setattr(daemon, "run_batch", broken)
    with FaultServer("127.0.0.15") as srv:
        srv.feed("/f.xml", items=1)
        sources = tmp_path / "sources.yaml"
        sources.write_text(f"feeds:\n  - id: f\n    url: {srv.url('/f.xml')}\n", encoding="utf-8")
        settings = tmp_path / "newsmon.yaml"
        settings.write_text("fetch:\n  allow_networks: [127.0.0.15/32]\n", encoding="utf-8")
        argv = ["run", "--once", "--config", str(settings), "--sources", str(sources), "--data-dir", str(tmp_path / "d")]
        assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("newsmon: the batch failed: RuntimeError: ValueError: bad topic [while running 'MatchTopics'] "
                       "(-v for the traceback)")
