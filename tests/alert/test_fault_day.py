"""A busy simulated day against a flaky Slack and a real SMTP server, with SIGKILLs.

The Slack stand-in (tests/alert/servers.py) answers 30% of calls with 5xx, some with 429 and
Retry-After, and hangs on some after storing the message (the client times out not knowing). The
day: 200 stories and about 2,100 copies over 24 simulated hours, plus a breaking-news burst of 50
small stories in one 20-minute batch, from four feeds, routed (by topic and feed tag) to ten Slack
channels and, for the default route, email, at the shipped rate of one Slack post per second per
channel. A channel with more new alerts due at once than `backlog_digest_after` gets them as one
digest. The daemon stand-in (tests/alert/fault_driver.py) is SIGKILLed at random moments and
started again until it has sent everything. Then, from what the channels received:

* every alert is in its channel exactly once, as its own message or inside a digest that arrived
  (none lost, none duplicated, none misrouted); every email alert likewise;
* every thread's replies arrived in order (seq 1, 2, 3, ... without gaps or repeats), none
  orphaned, each recorded in the notification log, and every copy was told in the end;
* the arrivals of posts and updates at each channel were never closer than one second (the
  stand-in takes the times), and nothing arrived while a Retry-After was running.

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
RATE = 1.0  # posts per second per channel: the shipped default (alerts.timing.slack_posts_per_second)
MINUTES = 24 * 60
STEP_MINUTES = 20.0  # simulated minutes per loop of the driver
BURST_MINUTE = 600.0  # breaking news: many new stories in one batch
FEEDS = {"f1": "world", "f2": "sport", "f3": "business", "f4": "regional"}
# Tried in order, the first match takes the alert (pipeline/alert/routes.py); "default" takes the rest.
ROUTES = [
    {"name": "ultimatum-world", "channel": "C0ULTWORLD", "topics": ["ultimatum"], "feed_tags": ["world"]},
    {"name": "ultimatum", "channel": "C0ULTIMATUM", "topics": ["ultimatum"]},
    {"name": "sport-sanctions", "channel": "C0SPORTSANC", "topics": ["sanctions"], "feed_tags": ["sport"]},
    {"name": "sport", "channel": "C0SPORT", "feed_tags": ["sport"]},
    {"name": "biz-sanctions", "channel": "C0BIZSANC", "topics": ["sanctions"], "feed_tags": ["business"]},
    {"name": "business", "channel": "C0BIZ", "feed_tags": ["business"]},
    {"name": "regional-sanctions", "channel": "C0REGSANC", "topics": ["sanctions"], "feed_tags": ["regional"]},
    {"name": "regional", "channel": "C0REG", "feed_tags": ["regional"]},
    {"name": "peace-talks", "channel": "C0PEACE", "topics": ["peace-talks"]},
    {"name": "default", "channel": SlackApiServer.CHANNEL},
]
CHANNELS = {r["name"]: r["channel"] for r in ROUTES}


def route_of(topic: str, feed: str) -> str:
    for r in ROUTES:
        if r["name"] != "default" and (not r.get("topics") or topic in r["topics"]) and (
                not r.get("feed_tags") or FEEDS[feed] in r["feed_tags"]):
            return r["name"]
    return "default"


def make_events(seed: int, stories: int = 200, burst: int = 50) -> list[tuple[float, list[list[str]]]]:
    """Copies of `stories` stories over the day and of `burst` small ones at BURST_MINUTE, in
    20-minute batches."""
    rng = random.Random(seed)
    outlets = [f"outlet{i:02d}" for i in range(80)]
    copies: list[tuple[float, list[str]]] = []
    n = 0

    def story(k: int, t0: float, count: int, spread: float) -> None:
        nonlocal n
        topic = rng.choice(["sanctions", "sanctions", "peace-talks", "peace-talks", "ultimatum"])
        feed = rng.choice(["f1", "f2", "f3", "f4"])
        for j in range(count):
            n += 1
            t = t0 if j == 0 else t0 + min(spread, rng.expovariate(1 / 40))
            copies.append((t, [f"s{k:03d}", rng.choice(outlets), topic, feed, f"c{n}"]))

    for k in range(stories):
        story(k, rng.uniform(0, MINUTES - 240), min(60, int(rng.expovariate(1 / 9)) + 1), 240.0)
    for k in range(stories, stories + burst):
        story(k, BURST_MINUTE + rng.uniform(0, 5), rng.randint(1, 3), 10.0)
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
            "data_dir": str(tmp_path / "data"), "api_url": slack.api_url, "token": slack.TOKEN, "routes": ROUTES,
            "feeds": FEEDS,
            "smtp": {"host": smtp.host, "port": smtp.port, "username": smtp.USERNAME, "password": smtp.PASSWORD,
                     "cafile": str(smtp.cert_path)},
            "start": start.isoformat(), "step_minutes": STEP_MINUTES,
            "minutes": MINUTES, "timeout": 1, "max_attempts": 30, "events": events,
            "timing": {"group_wait_seconds": 120, "reply_interval_seconds": 900, "spread_outlets": 6,
                       "spread_minutes": 30, "email_followup_minutes": 60, "slack_posts_per_second": RATE,
                       "backlog_digest_after": 4},
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
                    "calls": sum(slack.calls.values()), "calls_by_method": dict(slack.calls),
                    "last_life": json.loads(Path(str(plan_path) + ".done.json").read_text())})
    print("\nfault-day figures:", json.dumps(figures, sort_keys=True))
    (tmp_path / "fault-day.json").write_text(json.dumps(figures, indent=1, sort_keys=True))
    assert figures["copies_stored"] == copies and figures["stories"] == figures["alerts_expected"], figures
    assert figures["alerts_lost"] == 0 and figures["alerts_duplicated"] == 0 and figures["alerts_misrouted"] == 0, figures
    assert figures["replies_out_of_order"] == 0 and figures["replies_orphaned"] == 0, figures
    assert figures["replies_repeated"] == 0 and figures["replies_not_in_log"] == 0 and figures["replies_lost"] == 0
    assert figures["stories_untold"] == 0, figures
    assert figures["min_gap_seconds"] >= 0.99 / RATE and figures["retry_after_violations"] == 0, figures
    assert figures["digests_not_in_log"] == 0, figures
    assert figures["email_alerts_lost"] == 0 and figures["email_alerts_both_ways"] == 0, figures
    assert figures["digests"] >= 1 and figures["alerts_folded_in_digests"] >= 10, figures  # the burst folded
    assert figures["alerts"] >= 150 and figures["replies"] >= 200 and figures["faults_injected"]["5xx"] >= 100


def analyse(tmp_path: Path, slack: SlackApiServer, smtp: SmtpTestServer) -> dict:
    with Store.open(tmp_path / "data") as store:
        _, rows = store.query(
            "SELECT o.alert_id, o.topic, a.feed_id FROM alert_outbox o JOIN articles a USING (article_id)")
        expected = {aid: route_of(topic, feed) for aid, topic, feed in rows}
        _, rows = store.query("SELECT notification_id FROM alert_notifications WHERE kind = 'reply' AND status = 'sent' "
                              "AND channel NOT LIKE '%email'")
        logged_replies = {r[0] for r in rows}
        # What each digest that was recorded sent carries (its alerts are folded into it).
        _, rows = store.query("SELECT notification_id, channel, receipt, detail FROM alert_notifications "
                              "WHERE kind = 'digest' AND status = 'sent'")
        digests = {r[0]: (r[1], r[2], json.loads(r[3]).get("alerts", [])) for r in rows}
        _, rows = store.query(
            """WITH told AS (SELECT channel, story_id, max(copies) AS c FROM alert_notifications
                             WHERE kind IN ('first', 'reply') AND status = 'sent' GROUP BY ALL),
                    cur AS (SELECT story_id, count(*) AS n FROM story_members GROUP BY 1)
               SELECT count(*) FROM told JOIN cur USING (story_id) WHERE c < n""")
        untold = int(rows[0][0])
        stored = int(store.scalar("SELECT count(*) FROM story_members") or 0)
    by_channel = {v: k for k, v in CHANNELS.items()}
    tops = [m for m in slack.messages if not m.get("thread_ts")]
    alerts = [m for m in tops if m["metadata"]["event_type"] == "newsmon_alert"]
    digest_msgs = [m for m in tops if m["metadata"]["event_payload"].get("kind") == "digest"]
    # Every (channel, alert) the channel got: as its own message, or inside a digest that arrived.
    seen = Counter((m["channel"], m["metadata"]["event_payload"]["alert_id"]) for m in alerts)
    digest_seen = Counter((m["channel"], m["metadata"]["event_payload"]["notification_id"]) for m in digest_msgs)
    digests_not_in_log = sum(1 for _, n_id in digest_seen if n_id not in digests)
    folded = 0
    for (ch, n_id), times in digest_seen.items():
        for aid in digests.get(n_id, ("", "", []))[2]:
            seen[(ch, aid)] += times
            folded += 1
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
    min_gap = {by_channel[ch]: round(min(b - a for a, b in zip(t, t[1:], strict=False)), 4)
               for ch, t in slack.writes.items() if len(t) > 1}
    mails = [m.message for m in smtp.messages]
    firsts = Counter(m["Message-ID"] for m in mails if not m["In-Reply-To"])
    want_mail = {aid for aid, route in expected.items() if route == "default"}
    got_mail = {m["X-Newsmon-Alert-Id"] for m in mails if not m["In-Reply-To"] and m["X-Newsmon-Alert-Id"]}
    mail_digests = {receipt: carried for _, (ch, receipt, carried) in digests.items() if ch == "email"}
    mailed_digest_alerts = [aid for mid, carried in mail_digests.items() if mid in firsts for aid in carried]
    return {
        "copies_stored": stored, "alerts": len(alerts), "alerts_expected": len(expected), "alerts_lost": lost,
        "alerts_duplicated": sum(n - 1 for n in seen.values() if n > 1), "alerts_misrouted": misrouted,
        "digests": len(digest_msgs), "alerts_folded_in_digests": folded, "digests_not_in_log": digests_not_in_log,
        "replies": len(slack.replies()), "broadcasts": sum(1 for r in slack.replies() if r["reply_broadcast"]),
        "threads": len(threads), "replies_out_of_order": out_of_order, "replies_repeated": repeated,
        "replies_orphaned": orphaned, "replies_not_in_log": len(in_channel - logged_replies),
        "replies_lost": len(logged_replies - in_channel), "updates": len(slack.updates), "stories_untold": untold,
        "min_gap_seconds": min(min_gap.values()) if min_gap else None, "min_gap_by_channel": min_gap,
        "writes_by_channel": {by_channel[ch]: len(t) for ch, t in slack.writes.items()},
        "retry_after_violations": slack.retry_after_violations,
        "emails": len(mails), "email_alerts": len(got_mail), "email_digests": len(mail_digests),
        "email_alerts_lost": len(want_mail - got_mail - set(mailed_digest_alerts)),
        "email_alerts_both_ways": len(got_mail & set(mailed_digest_alerts)),
        "email_alert_repeats": sum(n - 1 for n in firsts.values()),
        "email_followups": sum(1 for m in mails if m["In-Reply-To"]),
    }
