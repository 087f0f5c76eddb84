"""Crash recovery: SIGKILL the daemon at random points of a cycle, restart, and check the store.

The requirement: from the moment a feed item is seen to the moment its article is stored,
at-least-once delivery into an idempotent store. Killing `newsmon run --once` with SIGKILL at any
moment and restarting it must leave every feed item stored exactly once, and no alert may be
lost or sent twice. Deliveries are claimed before the channel is called (`pipeline.alert.dispatch`):
Slack through the Web API reads its channel back after a restart, so it must show every alert
exactly once whatever the kill. SMTP cannot be asked, so an email that was in flight at the kill is
sent again (policy `resend`) with the same Message-ID; the test counts those repeats and checks
that each one is explained by a kill that landed while that email was in flight.

How: the demo's feeds are served from loopback, alerts go to a Slack Web API stand-in (bot token,
channel history with message metadata) and an SMTP server (the email channel). A clean reference cycle on an empty store gives
the cycle's duration T and the expected items. Then, episode by episode on a fresh store, the CLI
is started and killed (with its whole process group) after a delay drawn uniformly from
[0.2 s, T] by a seeded RNG, a few times in a row, and finally run to completion. After every kill
a read-only reader must open the DuckLake (its catalog is SQLite) and count the tables; after the
final run the store and the receivers are checked.

`bench/kill_test.py` runs the same harness with more kill points and prints the figures.
Environment knobs for this test: NEWSMON_KILL_POINTS (default 18), NEWSMON_KILL_SEED (default 20261122).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.demo import DemoServer
from pipeline.models import DISPOSITIONS
from pipeline.store import Store
from tests.alert.servers import SlackApiServer, SmtpTestServer
from tests.world import write_world_files

ROOT = Path(__file__).resolve().parent.parent
MIN_DELAY = 0.2
RUN_TIMEOUT = 180.0
FINAL_DISPOSITIONS = set(DISPOSITIONS) - {"pending"}


# --------------------------------------------------------------------------- the harness


@dataclass
class KillPoint:
    episode: int
    attempt: int
    delay: float                 # seconds after start when SIGKILL was due
    killed: bool                 # False: the cycle finished before the delay ran out
    phase: str                   # how far the process got, from its log
    journal_left: list[str]      # SQLite side files present after the kill (hot journal, WAL)
    reader_error: str | None     # a read-only open of the store after the kill failed
    in_flight: dict[str, int] = field(default_factory=dict)  # channel -> newly received but not recorded as sent


@dataclass
class Episode:
    index: int
    kills: list[KillPoint] = field(default_factory=list)
    final_rc: int | None = None
    violations: list[str] = field(default_factory=list)   # store invariants broken
    items: int = 0
    items_lost: int = 0
    items_duplicated: int = 0
    articles: int = 0
    alerts: int = 0                          # rows in alert_outbox
    lost: dict[str, int] = field(default_factory=dict)        # channel -> alerts never delivered
    lost_log: list[str] = field(default_factory=list)         # the delivery log of each lost alert
    duplicated: dict[str, int] = field(default_factory=dict)  # channel -> extra deliveries
    dispositions: dict[str, int] = field(default_factory=dict)
    stale_batch_dirs: int = 0    # shard folders of killed batches left under <data_dir>/batches

    @property
    def alerting_kills(self) -> int:
        return sum(1 for k in self.kills if k.killed and k.phase == "alerting")

    @property
    def in_flight(self) -> dict[str, int]:
        """Per channel: deliveries the receiver had but the store had not recorded, summed over the kills."""
        out: dict[str, int] = {}
        for k in self.kills:
            for ch, n in k.in_flight.items():
                out[ch] = out.get(ch, 0) + n
        return out


def phase_of(log: str) -> str:
    """How far a killed cycle got, judged from its (verbose) log."""
    if "alert_sent" in log or "batch_loaded" in log:
        return "alerting"
    if "feed_polled" in log and ("batch_started" in log or "apache_beam.runners" in log):
        return "batch"
    if "feed_polled" in log:
        return "polling"
    return "start-up"


class KillHarness:
    """The servers, the config, and the CLI runs; one instance for many episodes."""

    def __init__(self, workdir: Path, feeds: DemoServer, smtp: SmtpTestServer, slack: SlackApiServer) -> None:
        self.workdir = workdir
        self.feeds, self.smtp, self.slack = feeds, smtp, slack
        self.sources, self.settings = write_world_files(workdir, feeds, smtp, slack)
        self.env = {
            **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
            "NO_PROXY": "*",
            "NEWSMON_SLACK_BOT_TOKEN": slack.TOKEN,
            "NEWSMON_SMTP_PASSWORD": smtp.password,
            "PYTHONPATH": str(ROOT),
        }
        self.runs = 0
        self.current: subprocess.Popen[bytes] | None = None  # the run in progress
        self.last_start = 0.0
        self.alert_offset = 0.0  # seconds from start to the end of the batch in the clean cycle

    def run(self, data_dir: Path, kill_after: float | None = None) -> tuple[int | None, bool, float, str]:
        """Start one `run --once`; SIGKILL its process group after `kill_after` seconds.

        Returns (exit code or None when killed, killed, seconds, log).
        """
        self.runs += 1
        log_path = self.workdir / f"run-{self.runs:04d}.log"
        cmd = [
            sys.executable, "-m", "pipeline.cli", "run", "--once", "--verbose",
            "--config", str(self.settings), "--sources", str(self.sources), "--data-dir", str(data_dir),
        ]
        t0 = time.monotonic()
        self.last_start = time.time()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            self.current = proc
            killed = False
            try:
                proc.wait(timeout=kill_after if kill_after is not None else RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                killed = True
        elapsed = time.monotonic() - t0
        text = log_path.read_text(encoding="utf-8", errors="replace")
        if kill_after is None and killed:
            raise AssertionError(f"a run without a kill did not finish in {RUN_TIMEOUT} s:\n{text[-3000:]}")
        return (None if killed else proc.returncode), killed, elapsed, text

    def measure(self) -> tuple[float, set[str], dict[str, int]]:
        """A clean cycle on an empty store: its duration, its item ids, its dispositions."""
        data = self.workdir / "reference"
        # Warm the file cache first: a cold interpreter start would stretch the measured cycle.
        subprocess.run([sys.executable, "-c", "import pipeline.cli, pipeline.daemon"], env=self.env, check=True, timeout=120)
        rc, _, elapsed, log = self.run(data)
        assert rc == 0, log[-3000:]
        self.alert_offset = _offset_of(log, "batch_loaded", self.last_start, default=elapsed)
        with Store.open(data, read_only=True) as store:
            _, rows = store.query("SELECT item_id FROM items")
            _, disp = store.query("SELECT disposition, count(*) FROM items GROUP BY ALL")
        return elapsed, {r[0] for r in rows}, dict(disp)

    def episode(self, index: int, delays: list[float], expected_items: set[str]) -> Episode:
        data = self.workdir / f"episode-{index:03d}"
        # Each episode is a new store posting the same stories, so the same alert ids. Left in the
        # channel, the clean run's or an earlier episode's post would answer this episode's
        # after-a-kill lookup ("it had arrived"), and an alert this store never posted would be
        # recorded as sent: the "alerts lost 1" seen once in CI. A fresh store gets a fresh channel.
        self.slack.clear_channel()
        posts0, mails0 = len(self.slack.messages), len(self.smtp.messages)
        ep = Episode(index)
        prev_gaps: dict[str, int] = {}
        for attempt, delay in enumerate(delays, 1):
            rc, killed, _, log = self.run(data, kill_after=delay)
            if not killed:
                assert rc == 0, log[-3000:]
            side = sorted(p.name for p in data.glob("catalog.sqlite-*")) if data.exists() else []
            received = self.settled(posts0, mails0)
            error, recorded = read_after_kill(data)
            # Received minus recorded only grows, and only when a kill lands between a channel
            # accepting an alert and the delivery row's commit; the growth is this kill's share.
            gaps = {ch: sum(received[ch].values()) - recorded.get(ch, 0) for ch in received}
            new_gaps = {ch: gaps[ch] - prev_gaps.get(ch, 0) for ch in gaps}
            prev_gaps = gaps
            phase = phase_of(log) if killed else "finished"
            ep.kills.append(KillPoint(index, attempt, delay, killed, phase, side, error, new_gaps))
        rc, _, _, log = self.run(data)
        ep.final_rc = rc
        assert rc == 0, f"episode {index}: the run after the kills failed:\n{log[-3000:]}"
        check_store(data, ep, expected_items)
        ep.stale_batch_dirs = sum(1 for _ in (data / "batches").glob("*")) if (data / "batches").exists() else 0
        check_deliveries(data, ep, self.received(posts0, mails0))
        for alert_id, ids in self.email_ids_per_alert(mails0).items():
            if len(ids) != 1:
                ep.violations.append(f"email: alert {alert_id} repeated with different Message-IDs {sorted(ids)}")
        return ep

    def settled(self, posts0: int, mails0: int) -> dict[str, Counter[str | None]]:
        """`received()` once the receivers are quiet: a message sent just before a kill may still be
        on its way through the SMTP server when the process is gone (slow on a busy machine)."""
        last, deadline = None, time.monotonic() + 5.0
        while True:
            time.sleep(0.25)
            now = (len(self.slack.messages), len(self.smtp.messages))
            if now == last or time.monotonic() > deadline:
                return self.received(posts0, mails0)
            last = now

    def received(self, posts0: int, mails0: int) -> dict[str, Counter[str | None]]:
        """Deliveries per channel and alert id since the given receiver positions."""
        return {
            "slack": Counter(self.slack.alert_ids()[posts0:]),
            "email": Counter(m.message["X-Newsmon-Alert-Id"] for m in self.smtp.messages[mails0:]),
        }

    def email_ids_per_alert(self, mails0: int) -> dict[str | None, set[str]]:
        """Message-IDs seen per alert id: a repeat must carry the first copy's Message-ID."""
        out: dict[str | None, set[str]] = {}
        for m in self.smtp.messages[mails0:]:
            out.setdefault(m.message["X-Newsmon-Alert-Id"], set()).add(str(m.message["Message-ID"]))
        return out


def _offset_of(log: str, marker: str, start: float, *, default: float) -> float:
    """Seconds from `start` (epoch) to the first log line containing `marker` (local-time stamps)."""
    for line in log.splitlines():
        if marker in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return max(0.0, stamp.timestamp() - start)
    return default


def read_after_kill(data: Path) -> tuple[str | None, dict[str, int]]:
    """An analyst's read-only open right after the kill.

    Returns (the error, or None when it worked or there is no store yet; 'sent' deliveries per channel).
    """
    if not (data / "catalog.sqlite").exists():
        return None, {}
    try:
        with Store.open(data, read_only=True) as store:
            tables = {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")[1]}
            if "items" not in tables or "alert_deliveries" not in tables:
                return None, {}
            store.counts()
            _, rows = store.query("SELECT channel, count(*) FROM alert_deliveries WHERE status = 'sent' GROUP BY ALL")
            return None, dict(rows)
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        return f"{type(e).__name__}: {e}", {}


def _dups(store: Store, table: str, key: str) -> int:
    return int(store.scalar(f"SELECT count(*) - count(DISTINCT ({key})) FROM {table}") or 0)


def check_store(data: Path, ep: Episode, expected_items: set[str]) -> None:
    """The store's invariants after the final run."""
    v = ep.violations
    with Store.open(data, read_only=True) as store:
        _, rows = store.query("SELECT item_id, disposition FROM items")
        ids = Counter(r[0] for r in rows)
        ep.items = len(ids)
        ep.items_lost = len(expected_items - set(ids))
        ep.items_duplicated = sum(n - 1 for n in ids.values())
        ep.dispositions = dict(Counter(r[1] for r in rows))
        if ep.items_lost:
            v.append(f"items lost: {sorted(expected_items - set(ids))}")
        if ep.items_duplicated:
            v.append(f"items duplicated: {[i for i, n in ids.items() if n > 1]}")
        not_final = {d: n for d, n in ep.dispositions.items() if d not in FINAL_DISPOSITIONS}
        if not_final:
            v.append(f"items without a final disposition: {not_final}")
        ep.articles = int(store.scalar("SELECT count(*) FROM articles"))
        for table, key in (
            ("articles", "article_id"),
            ("articles", "canonical_url"),
            ("articles", "item_id"),
            ("stories", "story_id"),
            ("story_members", "story_id, item_id"),
            ("topic_matches", "article_id, topic"),
            ("alert_outbox", "alert_id"),
            ("alert_outbox", "topic, story_id"),
        ):
            n = _dups(store, table, key)
            if n:
                v.append(f"{table}: {n} duplicate rows by ({key})")
        stored = ep.dispositions.get("stored", 0)
        if stored != ep.articles:
            v.append(f"{stored} items stored but {ep.articles} articles")
        orphans = store.scalar(
            "SELECT count(*) FROM items i WHERE i.disposition = 'stored' "
            "AND NOT EXISTS (SELECT 1 FROM articles a WHERE a.item_id = i.item_id)"
        )
        if orphans:
            v.append(f"{orphans} stored items without their article")
        twice = store.scalar(
            "SELECT count(*) FROM (SELECT alert_id, channel FROM alert_deliveries WHERE status = 'sent' "
            "GROUP BY ALL HAVING count(*) > 1)"
        )
        if twice:
            v.append(f"{twice} (alert, channel) pairs recorded as sent more than once")
        ep.alerts = int(store.scalar("SELECT count(*) FROM alert_outbox"))


def check_deliveries(data: Path, ep: Episode, received: dict[str, Counter[str | None]]) -> None:
    """Every outbox alert reached each channel; extra deliveries are counted, not hidden."""
    with Store.open(data, read_only=True) as store:
        outbox = {r[0] for r in store.query("SELECT alert_id FROM alert_outbox")[1]}
        for channel, got in received.items():
            for alert_id in sorted(outbox - set(got)):
                _, rows = store.query(
                    "SELECT attempt, status, error, attempted_at, next_attempt_at FROM alert_deliveries "
                    "WHERE alert_id = ? AND channel = ? ORDER BY attempted_at",
                    [alert_id, channel],
                )
                ep.lost_log.append(f"{channel} {alert_id}: {rows or 'no delivery rows'}")
    for channel, got in received.items():
        ep.lost[channel] = len(outbox - set(got))
        ep.duplicated[channel] = sum(n - 1 for n in got.values() if n > 1)
        strangers = set(got) - outbox
        if strangers:
            ep.violations.append(f"{channel}: deliveries for alerts not in the outbox: {sorted(map(str, strangers))}")


def kill_schedule(
    rng: random.Random, kill_points: int, per_episode: int, cycle: float, earliest: float = MIN_DELAY
) -> list[list[float]]:
    """Delays for each episode, uniform over [earliest, cycle]."""
    out, left = [], kill_points
    while left > 0:
        n = min(per_episode, left)
        out.append([round(rng.uniform(earliest, max(cycle, earliest + 0.1)), 3) for _ in range(n)])
        left -= n
    return out


@dataclass
class Report:
    cycle_seconds: float
    expected_items: int
    episodes: list[Episode]
    seconds: float

    @property
    def kills(self) -> list[KillPoint]:
        return [k for e in self.episodes for k in e.kills]

    def totals(self) -> dict[str, Any]:
        eps = self.episodes
        return {
            "kill_points": len(self.kills),
            "killed": sum(k.killed for k in self.kills),
            "phases": dict(Counter(k.phase for k in self.kills)),
            "sqlite_side_files_after_kill": dict(Counter(f for k in self.kills for f in k.journal_left)),
            "reader_failures": sum(k.reader_error is not None for k in self.kills),
            "items_lost": sum(e.items_lost for e in eps),
            "items_duplicated": sum(e.items_duplicated for e in eps),
            "alerts_lost": sum(sum(e.lost.values()) for e in eps),
            "alerts_duplicated": {ch: sum(e.duplicated.get(ch, 0) for e in eps) for ch in ("slack", "email")},
            "alerting_kills": sum(e.alerting_kills for e in eps),
            "in_flight_at_kill": {ch: sum(e.in_flight.get(ch, 0) for e in eps) for ch in ("slack", "email")},
            "stale_batch_dirs": sum(e.stale_batch_dirs for e in eps),
            "violations": [f"episode {e.index}: {x}" for e in eps for x in e.violations],
        }

    def render(self) -> str:
        t = self.totals()
        lines = [
            f"clean cycle {self.cycle_seconds:.2f} s, {self.expected_items} feed items; "
            f"{len(self.episodes)} episodes, total {self.seconds:.1f} s",
            f"kill points {t['kill_points']} (killed {t['killed']}, the rest finished first); by phase {t['phases']}",
            f"SQLite side files left by a kill {t['sqlite_side_files_after_kill'] or 'none'}, "
            f"reader failures {t['reader_failures']}, stale batch folders {t['stale_batch_dirs']}",
            f"items lost {t['items_lost']}, items duplicated {t['items_duplicated']}",
            f"alerts lost {t['alerts_lost']}, alerts duplicated {t['alerts_duplicated']} "
            f"(kills while alerting: {t['alerting_kills']}; kills between a channel's acceptance and the "
            f"delivery commit: {t['in_flight_at_kill']})",
        ]
        for e in self.episodes:
            lines.append(
                f"  episode {e.index}: delays {[k.delay for k in e.kills]} phases {[k.phase for k in e.kills]} "
                f"in flight {[sum(k.in_flight.values()) for k in e.kills]} "
                f"items {e.items} articles {e.articles} alerts {e.alerts} lost {e.lost} dup {e.duplicated}"
            )
            lines += [f"    LOST {x}" for x in e.lost_log]
        lines += [f"VIOLATION {x}" for x in t["violations"]]
        lines += [f"READER {k.episode}/{k.attempt}: {k.reader_error}" for k in self.kills if k.reader_error]
        return "\n".join(lines)


def run_kill_test(
    workdir: Path, *, kill_points: int, seed: int, per_episode: int = 3, focus_alerts: bool = False, log=print
) -> Report:
    """Kill points spread over whole cycles, or (`focus_alerts`) over the alerting end of the first cycle."""
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with DemoServer() as feeds, SmtpTestServer(workdir / "smtp") as smtp, SlackApiServer() as slack:
        harness = KillHarness(workdir, feeds, smtp, slack)
        cycle, expected, disp = harness.measure()
        log(f"clean cycle: {cycle:.2f} s, {len(expected)} items, dispositions {disp}")
        rng = random.Random(seed)
        earliest = max(MIN_DELAY, harness.alert_offset - 0.3) if focus_alerts else MIN_DELAY
        if focus_alerts:
            log(f"alerting starts about {harness.alert_offset:.2f} s into the cycle; delays from {earliest:.2f} s")
        episodes = []
        for i, delays in enumerate(kill_schedule(rng, kill_points, per_episode, cycle, earliest), 1):
            ep = harness.episode(i, delays, expected)
            episodes.append(ep)
            log(
                f"episode {i}: delays {delays} -> {[k.phase for k in ep.kills]}; "
                f"lost {ep.lost} duplicated {ep.duplicated} violations {ep.violations}"
            )
    return Report(cycle, len(expected), episodes, time.monotonic() - t0)


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    kill_points = int(os.environ.get("NEWSMON_KILL_POINTS", "18"))
    seed = int(os.environ.get("NEWSMON_KILL_SEED", "20261122"))
    report = run_kill_test(tmp_path, kill_points=kill_points, seed=seed, log=lambda s: None)
    text = report.render()
    print(text)  # shown with -s or on failure
    t = report.totals()

    assert t["kill_points"] == kill_points
    assert t["killed"] >= kill_points // 3, text  # the delays really do interrupt cycles (later runs are short)
    assert t["reader_failures"] == 0, text        # the lake opens after every kill
    assert t["violations"] == [], text
    assert t["items_lost"] == 0 and t["items_duplicated"] == 0, text
    assert all(e.items == report.expected_items and e.articles > 0 for e in report.episodes), text
    assert t["alerts_lost"] == 0, text
    # Slack (Web API) checks in-flight deliveries in the channel: never twice, whatever the kill.
    assert t["alerts_duplicated"]["slack"] == 0, text
    # Email cannot be checked: a repeat (same Message-ID) is allowed only for a kill that landed
    # while that email was in flight (the server had it, its outcome was not committed), one per kill.
    for e in report.episodes:
        assert e.duplicated.get("email", 0) == e.in_flight.get("email", 0), text
        # Channels are sent to in parallel (each has its own rate limit): one alert in flight per
        # channel per kill, at most.
        assert all(n <= e.alerting_kills for n in e.in_flight.values()), text


_KILLED_MID_COMMIT = """
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA cache_size=2")  # spill pages to the file early: the journal becomes hot
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE crash_probe (x TEXT)")
for _ in range(2000):
    db.execute("INSERT INTO crash_probe VALUES (?)", ["x" * 500])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_reader_opens_the_store_after_a_writer_died_mid_commit(tmp_path: Path) -> None:
    """A writer killed inside a catalog transaction leaves a hot journal; readers must still open."""
    with Store.open(tmp_path) as store:
        store.sync_feeds([], datetime.now())
    catalog = tmp_path / "catalog.sqlite"
    proc = subprocess.run([sys.executable, "-c", _KILLED_MID_COMMIT, str(catalog)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "catalog.sqlite-journal").stat().st_size > 0

    with Store.open(tmp_path, read_only=True) as reader:
        assert reader.counts()["items"] == 0
        tables = {r[0] for r in reader.query("SELECT table_name FROM information_schema.tables")[1]}
    assert "crash_probe" not in tables  # the killed transaction was rolled back, not half applied
    with Store.open(tmp_path) as writer:  # and the daemon opens it afterwards as usual
        assert writer.counts()["feeds"] == 0


def test_a_kill_right_after_slack_accepted_the_post_neither_loses_nor_repeats_it(tmp_path: Path) -> None:
    """The worst moment, made deterministic: the Slack stand-in kills the daemon as soon as it has
    stored the first alert, before answering. After the restart that alert is found in the
    channel (by the id in its metadata), recorded as sent, and not posted again."""
    with DemoServer() as feeds, SmtpTestServer(tmp_path / "smtp") as smtp, SlackApiServer() as slack:
        harness = KillHarness(tmp_path, feeds, smtp, slack)
        data = tmp_path / "data"

        def kill_on_first_post(message: dict[str, Any]) -> None:
            if len(slack.messages) == 1 and harness.current is not None:
                os.killpg(harness.current.pid, signal.SIGKILL)

        slack.after_post = kill_on_first_post
        try:
            rc, killed, _, log = harness.run(data, kill_after=RUN_TIMEOUT)
        finally:
            slack.after_post = None
        assert rc == -signal.SIGKILL and not killed, log[-3000:]  # died by the stand-in's hand
        first = slack.alert_ids()[0]
        with Store.open(data, read_only=True) as store:
            claim = store.query(
                "SELECT status FROM alert_deliveries WHERE alert_id = ? AND channel = 'slack'", [first]
            )[1]
        assert claim == [("sending",)]  # in doubt: claimed, no outcome

        rc, _, _, log = harness.run(data)
        assert rc == 0, log[-3000:]
        with Store.open(data, read_only=True) as store:
            outbox = {r[0] for r in store.query("SELECT alert_id FROM alert_outbox")[1]}
            (how,) = store.query(
                "SELECT error FROM alert_deliveries WHERE alert_id = ? AND channel = 'slack' AND status = 'sent'",
                [first],
            )[1]
    ids = slack.alert_ids()
    assert sorted(ids) == sorted(outbox)  # every alert once, the in-doubt one included
    assert "confirmed" in (how[0] or "")
    assert "alert_in_doubt_confirmed" in log


def test_a_kill_right_after_the_smtp_server_took_the_mail_repeats_it_with_the_same_message_id(
    tmp_path: Path,
) -> None:
    """SMTP cannot be asked whether a message arrived. An email in flight at the kill is sent again
    after the restart (on_in_doubt: resend, the default) with the same Message-ID, once."""
    with DemoServer() as feeds, SmtpTestServer(tmp_path / "smtp") as smtp, SlackApiServer() as slack:
        harness = KillHarness(tmp_path, feeds, smtp, slack)
        data = tmp_path / "data"

        def kill_on_first_mail(envelope: object) -> None:
            if not smtp.messages and harness.current is not None:
                os.killpg(harness.current.pid, signal.SIGKILL)

        smtp.after_data = kill_on_first_mail
        try:
            rc, _, _, log = harness.run(data, kill_after=RUN_TIMEOUT)
        finally:
            smtp.after_data = None
        assert rc == -signal.SIGKILL, log[-3000:]
        rc, _, _, log = harness.run(data)
        assert rc == 0, log[-3000:]
        with Store.open(data, read_only=True) as store:
            outbox = {r[0] for r in store.query("SELECT alert_id FROM alert_outbox")[1]}
        first = smtp.messages[0].message["X-Newsmon-Alert-Id"]
        got = Counter(m.message["X-Newsmon-Alert-Id"] for m in smtp.messages)
        ids = {str(m.message["Message-ID"]) for m in smtp.messages if m.message["X-Newsmon-Alert-Id"] == first}
    assert set(got) == outbox
    assert got[first] == 2 and all(n == 1 for a, n in got.items() if a != first)
    assert len(ids) == 1  # the repeat is the same message for the receiver's de-duplication
    assert "alert_in_doubt_resent" in log
    assert sorted(slack.alert_ids()) == sorted(outbox)
