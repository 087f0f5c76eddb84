"""The fault test's daemon stand-in: a process that lives a busy simulated day of stories and
sends their alerts, so the test can SIGKILL it at any moment and start it again.

    python -m tests.alert.fault_driver PLAN.json

The plan (written by tests/alert/test_fault_day.py) holds the store's folder, the Slack stand-in's
URL, the SMTP server, the feeds (id -> tag) and the routes (name, channel, topics, feed tags), the simulated day's start and step, and the copies: (minute of the day,
[story, outlet, topic, feed, item key] per copy). The simulated clock moves one step per loop (kept in
PLAN.clock, so a restart goes on from there). Each loop loads the copies whose minute has
come (each batch once: its id is fixed, and a batch killed mid-load is loaded again) and runs the
alert engine, the daemon's alert job. After the day, it runs until nothing is left to send and
exits 0, writing a line of figures to PLAN.done.json.
"""

from __future__ import annotations

import json
import ssl
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.alert.notifiers import EmailNotifier, SlackApiNotifier
from pipeline.alert.ratelimit import ChannelLimiter
from pipeline.alert.routes import Route
from pipeline.config import AlertTimingConfig, RouteMatchConfig, Source
from pipeline.fileio import write_atomic
from tests.alert.alert_world import AlertWorld


def main(plan_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    start = datetime.fromisoformat(plan["start"])
    step = timedelta(minutes=float(plan["step_minutes"]))
    end = start + timedelta(minutes=plan["minutes"])
    clock_file = Path(plan_path + ".clock")
    # The simulated clock moves one step per loop, whatever the machine's load, and is kept in a
    # file, so a restarted life goes on from where the killed one was (time moves on over a kill).
    base = datetime.fromisoformat(clock_file.read_text()) if clock_file.exists() else start
    tick = time.monotonic()

    def sim() -> datetime:
        return base + timedelta(seconds=time.monotonic() - tick)

    feeds = [Source(id=f, url=f"https://example.org/{f}.xml", tags=(tag,)) for f, tag in plan["feeds"].items()]
    w = AlertWorld(Path(plan["data_dir"]), sim(), feeds=feeds)
    token, api = plan["token"], plan["api_url"]
    timeout = float(plan.get("timeout", 1))

    def slack(channel: str, route: str) -> SlackApiNotifier:
        return SlackApiNotifier(token, channel, api_url=api, timeout=timeout, route=route)

    smtp = plan["smtp"]
    mail = EmailNotifier(smtp["host"], smtp["port"], "newsmon@example.org", ("desk@example.org",),
                         username=smtp["username"], password=smtp["password"],
                         ssl_context=ssl.create_default_context(cafile=smtp["cafile"]), local_hostname="localhost")
    # The plan's routes, in order (the first match takes an alert); the default route also mails.
    routes = []
    for r in plan["routes"]:
        if r["name"] == "default":
            routes.append(Route("default", [slack(r["channel"], "default"), mail]))
        else:
            routes.append(Route(r["name"], [slack(r["channel"], r["name"])],
                                match=RouteMatchConfig(topics=tuple(r.get("topics", ())),
                                                       feed_tags=tuple(r.get("feed_tags", ())))))
    timing = AlertTimingConfig(**plan["timing"])
    engine = w.engine(routes, timing, limiter=ChannelLimiter(timing.slack_posts_per_second),
                      max_attempts=int(plan["max_attempts"]))
    engine.now = sim  # a live clock: every row gets the simulated time of its moment
    _, rows = w.store.query("SELECT batch_id FROM batches")
    loaded = {r[0] for r in rows}
    events = plan["events"]
    quiet_runs = cycles = 0
    spent = {"load_seconds": 0.0, "alert_run_seconds": 0.0}  # this life's, for the figures
    while True:
        base, tick = base + step, time.monotonic()
        write_atomic(clock_file, base.isoformat())
        now = sim()
        t_load = time.monotonic()
        for i, (minute, copies) in enumerate(events):
            if f"b-ev{i}" in loaded or start + timedelta(minutes=minute) > now:
                continue
            w.t = sim()
            w.copies_many(copies, f"b-ev{i}", seen_at=start + timedelta(minutes=minute))
            loaded.add(f"b-ev{i}")
        t_run = time.monotonic()
        spent["load_seconds"] += t_run - t_load
        s = engine.run()
        spent["alert_run_seconds"] += time.monotonic() - t_run
        cycles += 1
        busy = s.sent + s.replies + s.updates + s.transient + s.confirmed + s.resent_in_doubt + s.held_group_wait
        if now >= end and len(loaded) == len(events) and busy == 0:
            left = engine.pending()
            quiet_runs = quiet_runs + 1 if not any(left.values()) else 0
            if quiet_runs >= 2:
                break
    Path(plan_path + ".done.json").write_text(json.dumps({"cycles_last_life": cycles, "sim_end": sim().isoformat(),
                                                            **{k: round(v, 1) for k, v in spent.items()}}))
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
