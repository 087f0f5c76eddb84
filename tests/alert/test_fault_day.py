"""A busy simulated day against a flaky Slack and a real SMTP server, with SIGKILLs.

The Slack stand-in (tests/alert/servers.py) answers 30% of calls with 5xx, some with 429 and
Retry-After, and hangs on some after storing the message (the client times out not knowing). The
day: 200 stories and about 2,000 copies over 24 simulated hours, routed to three Slack channels
(by feed tag and topic) and, for the default route, email. The daemon stand-in
(tests/alert/fault_driver.py) is SIGKILLed at random moments and started again until it has sent
everything. Then, from what the channels received:

* every alert is in its channel exactly once (none lost, none duplicated, none misrouted);
* every thread's replies arrived in order (seq 1, 2, 3, ... without gaps or repeats), none
  orphaned, each recorded in the notification log, and every copy was told in the end;
* the arrivals at each channel were never closer than the configured rate, and nothing arrived
  while a Retry-After was running;
* every email alert arrived (a kill mid-send may repeat one, with the same Message-ID).

The figures are printed (run with -s) and written to fault-day.json in the test's folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.store import Store
from tests.alert.servers import SlackApiServer, SlackFaults, SmtpTestServer

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = {"default": SlackApiServer.CHANNEL, "sport": "C0SPORT", "ultimatum": "C0ULTIMATUM"}
RATE = 10.0  # posts per second per channel in this test (the default, 1/s, is checked in test_lifecycle)
MINUTES = 24 * 60
STEP_MINUTES = 20.0  # simulated minutes per loop of the driver


def make_events(seed: int, stories: int = 200) -> list[tuple[float, list[list[str]]]]:
    """Copies of `stories` stories over the day, in 20-minute batches."""
    rng = random.Random(seed)
    outlets = [f"outlet{i:02d}" for i in range(80)]
    copies: list[tuple[float, list[str]]] = []
    n = 0
    for k in range(stories):
        t0 = rng.uniform(0, MINUTES - 240)
        topic = rng.choice(["sanctions", "sanctions", "peace-talks", "ultimatum"])
        feed = "f2" if rng.random() < 0.25 else "f1"
        count = min(60, int(rng.expovariate(1 / 9)) + 1)
        for j in range(count):
            n += 1
            t = t0 if j == 0 else t0 + min(240.0, rng.expovariate(1 / 40))
            copies.append((t, [f"s{k:03d}", rng.choice(outlets), topic, feed, f"c{n}"]))
    batches: dict[int, list[list[str]]] = defaultdict(list)
    for t, c in sorted(copies):
        batches[int(t // STEP_MINUTES)].append(c)
    return [(b * STEP_MINUTES, batches[b]) for b in sorted(batches)]


def test_a_busy_day_of_faults_and_kills_loses_and_repeats_nothing(tmp_path: Path) -> None:
    faults = SlackFaults(rate_429=0.03, rate_5xx=0.30, rate_hang=0.02, retry_after=1.0, hang_seconds=2.5, seed=14)
    events = make_events(14)
    copies = sum(len(b) for _, b in events)
    start = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(1414)
    with SlackApiServer(channels=tuple(CHANNELS.values()), faults=faults) as slack, \
            SmtpTestServer(tmp_path / "smtp") as smtp:
        plan = {
            "data_dir": str(tmp_path / "data"), "api_url": slack.api_url, "token": slack.TOKEN, "channels": CHANNELS,
            "smtp": {"host": smtp.host, "port": smtp.port, "username": smtp.USERNAME, "password": smtp.PASSWORD,
                     "cafile": str(smtp.cert_path)},
            "start": start.isoformat(), "step_minutes": STEP_MINUTES,
            "minutes": MINUTES, "timeout": 1, "max_attempts": 30, "events": events,
            "timing": {"group_wait_seconds": 120, "reply_interval_seconds": 900, "spread_outlets": 6,
                       "spread_minutes": 30, "email_followup_minutes": 60, "slack_posts_per_second": RATE,
                       "backlog_digest_after": 1000},
        }
        plan_path = tmp_path / "plan.json"
        plan_path.write_text(json.dumps(plan), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["PYTHONPATH"] = str(ROOT)
        kills, lives, deadline = 0, 0, time.monotonic() + 2400
        logfile = tmp_path / "driver.log"
        while True:
            lives += 1
            with open(logfile, "a", encoding="utf-8") as log:
                proc = subprocess.Popen([sys.executable, "-m", "tests.alert.fault_driver", str(plan_path)], cwd=ROOT,
                                        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            if kills < 6:
                try:
                    proc.wait(timeout=rng.uniform(6, 20))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    continue
            else:
                try:
                    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            assert proc.returncode == 0, logfile.read_text()[-4000:]
            break
        figures = analyse(tmp_path, slack, smtp)
    figures.update({"copies": copies, "stories": len({c[0] for _, b in events for c in b}), "kills": kills,
                    "lives": lives, "faults_injected": dict(slack.faults_injected),
                    "calls": sum(slack.calls.values()), "calls_by_method": dict(slack.calls)})
    print("\nfault-day figures:", json.dumps(figures, sort_keys=True))
    (tmp_path / "fault-day.json").write_text(json.dumps(figures, indent=1, sort_keys=True))
    assert figures["copies_stored"] == copies and figures["stories"] == figures["alerts_expected"], figures
    assert figures["alerts_lost"] == 0 and figures["alerts_duplicated"] == 0 and figures["alerts_misrouted"] == 0, figures
    assert figures["replies_out_of_order"] == 0 and figures["replies_orphaned"] == 0, figures
    assert figures["replies_repeated"] == 0 and figures["replies_not_in_log"] == 0 and figures["replies_lost"] == 0
    assert figures["stories_untold"] == 0, figures
    assert figures["min_gap_seconds"] >= 0.99 / RATE and figures["retry_after_violations"] == 0, figures
    assert figures["email_alerts_lost"] == 0, figures
    assert figures["alerts"] >= 150 and figures["replies"] >= 200 and figures["faults_injected"]["5xx"] >= 100


def analyse(tmp_path: Path, slack: SlackApiServer, smtp: SmtpTestServer) -> dict:
    with Store.open(tmp_path / "data") as store:
        _, rows = store.query(
            "SELECT o.alert_id, o.topic, a.feed_id FROM alert_outbox o JOIN articles a USING (article_id)")
        expected = {aid: ("sport" if feed == "f2" else "ultimatum" if topic == "ultimatum" else "default")
                    for aid, topic, feed in rows}
        _, rows = store.query("SELECT notification_id FROM alert_notifications WHERE kind = 'reply' AND status = 'sent' "
                              "AND channel NOT LIKE '%email'")
        logged_replies = {r[0] for r in rows}
        _, rows = store.query(
            """WITH told AS (SELECT channel, story_id, max(copies) AS c FROM alert_notifications
                             WHERE kind IN ('first', 'reply') AND status = 'sent' GROUP BY ALL),
                    cur AS (SELECT story_id, count(*) AS n FROM story_members GROUP BY 1)
               SELECT count(*) FROM told JOIN cur USING (story_id) WHERE c < n""")
        untold = int(rows[0][0])
        stored = int(store.scalar("SELECT count(*) FROM story_members") or 0)
    by_channel = {v: k for k, v in CHANNELS.items()}
    tops = [m for m in slack.messages if not m.get("thread_ts")]
    seen = Counter((m["channel"], m["metadata"]["event_payload"]["alert_id"]) for m in tops)
    misrouted = sum(1 for (ch, aid) in seen if expected.get(aid) != by_channel[ch])
    lost = sum(1 for aid, route in expected.items() if seen[(CHANNELS[route], aid)] == 0)
    parents = {(m["channel"], m["ts"]) for m in tops}
    threads: dict[tuple[str, str], list[int]] = defaultdict(list)
    orphaned = len(slack.orphans)
    for r in slack.replies():
        if (r["channel"], r["thread_ts"]) not in parents:
            orphaned += 1
        threads[(r["channel"], r["thread_ts"])].append(int(r["metadata"]["event_payload"]["seq"]))
    out_of_order = sum(1 for seqs in threads.values() if seqs != sorted(set(seqs)) or seqs != list(range(1, len(seqs) + 1)))
    repeated = sum(len(s) - len(set(s)) for s in threads.values())
    in_channel = {r["metadata"]["event_payload"]["notification_id"] for r in slack.replies()}
    gaps = [b - a for times in slack.writes.values() for a, b in zip(times, times[1:], strict=False)]
    mails = [m.message for m in smtp.messages]
    firsts = Counter(m["Message-ID"] for m in mails if not m["In-Reply-To"])
    want_mail = {aid for aid, route in expected.items() if route == "default"}
    got_mail = {m["X-Newsmon-Alert-Id"] for m in mails if not m["In-Reply-To"]}
    return {
        "copies_stored": stored, "alerts": len(tops), "alerts_expected": len(expected), "alerts_lost": lost,
        "alerts_duplicated": sum(n - 1 for n in seen.values()), "alerts_misrouted": misrouted,
        "replies": len(slack.replies()), "broadcasts": sum(1 for r in slack.replies() if r["reply_broadcast"]),
        "threads": len(threads), "replies_out_of_order": out_of_order, "replies_repeated": repeated,
        "replies_orphaned": orphaned, "replies_not_in_log": len(in_channel - logged_replies),
        "replies_lost": len(logged_replies - in_channel), "updates": len(slack.updates), "stories_untold": untold,
        "min_gap_seconds": round(min(gaps), 4) if gaps else None, "retry_after_violations": slack.retry_after_violations,
        "emails": len(mails), "email_alerts": len(firsts), "email_alerts_lost": len(want_mail - got_mail),
        "email_alert_repeats": sum(n - 1 for n in firsts.values()),
        "email_followups": sum(1 for m in mails if m["In-Reply-To"]),
    }
