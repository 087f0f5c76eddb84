"""Pipeline-health checks that alert the ops route, each firing once and resolving once.

    feed:<id>        a feed auto-disabled, failing 3 polls in a row, or silent for over three
                     times its own usual gap between items (a day at least): `newsmon status`'s rules
    volume           new items in the last 6 hours below `volume_drop_fraction` of the usual 6 hours
                     (the mean over the 7 days before; only once 2 days of history exist)
    batches          `batch_failures` batches failing in a row (daemon-health.json)
    dead_letters     `dead_letters_growth` or more dead letters added in the last hour
    maintenance      no store maintenance run for `maintenance_overdue_hours` while it is enabled

A check's transitions are rows of `alert_health`; only a change of state sends a message, so a
feed that stays dead is told once, and once more when it comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import HealthAlertsConfig
from pipeline.store import LAKE, Store, _insert

FEED_STATUS_SQL = Path(__file__).resolve().parent.parent / "store" / "feed_status.sql"


def pipeline_checks(
    store: Store,
    cfg: HealthAlertsConfig,
    data_dir: Path,
    *,
    last_maintained: Callable[[], datetime | None] | None = None,
    started_at: datetime | None = None,
) -> Callable[[datetime], list[tuple[str, bool, str]]]:
    """A function of `now` giving (check_key, firing, detail) for every check."""

    def run(now: datetime) -> list[tuple[str, bool, str]]:
        out: list[tuple[str, bool, str]] = []
        if not cfg.enabled:
            return out
        if cfg.feeds:
            cols, rows = store.query(FEED_STATUS_SQL.read_text(encoding="utf-8").rstrip().rstrip(";"))
            ix = {c: i for i, c in enumerate(cols)}
            for r in rows:
                health, streak = r[ix["health"]], int(r[ix["error_streak"]] or 0)
                bad = health in ("auto-disabled", "silent") or (health == "failing" and streak >= 3)
                what = f"feed {r[ix['feed_id']]} is {health}" + (
                    f" ({streak} errors in a row: {r[ix['last_error']] or ''})" if health == "failing" else "")
                out.append((f"feed:{r[ix['feed_id']]}", bad, what if bad else f"feed {r[ix['feed_id']]} is ok again"))
        first = store.scalar(f"SELECT min(seen_at) FROM {LAKE}.items")
        if first is not None and now - first >= timedelta(days=2):
            recent = int(store.scalar(f"SELECT count(*) FROM {LAKE}.items WHERE seen_at > ?", [now - timedelta(hours=6)]) or 0)
            since = max(first, now - timedelta(days=7, hours=6))
            before = int(store.scalar(f"SELECT count(*) FROM {LAKE}.items WHERE seen_at > ? AND seen_at <= ?",
                                      [since, now - timedelta(hours=6)]) or 0)
            windows = max(1.0, (now - timedelta(hours=6) - since).total_seconds() / (6 * 3600))
            usual = before / windows
            low = usual >= 10 and recent < cfg.volume_drop_fraction * usual
            out.append(("volume", low, f"new items fell to {recent} in 6 h (usually {usual:.0f})" if low
                        else f"new items back to {recent} in 6 h (usually {usual:.0f})"))
        from pipeline.health import read_health

        failures = int(read_health(data_dir).get("batch_failures_in_row") or 0)
        out.append(("batches", failures >= cfg.batch_failures,
                    f"{failures} batches failed in a row" if failures >= cfg.batch_failures else "batches succeed again"))
        grown = int(store.scalar(f"SELECT count(*) FROM {LAKE}.dead_letters WHERE created_at > ?",
                                 [now - timedelta(hours=1)]) or 0)
        out.append(("dead_letters", grown >= cfg.dead_letters_growth,
                    f"{grown} dead letters in the last hour (newsmon status --dead-letters)"
                    if grown >= cfg.dead_letters_growth else "dead letters no longer growing"))
        if last_maintained is not None:
            last = last_maintained() or started_at
            overdue = last is not None and now - last > timedelta(hours=cfg.maintenance_overdue_hours)
            out.append(("maintenance", overdue, f"the store has not been maintained since {last:%Y-%m-%d %H:%M} UTC"
                        if overdue and last else "store maintenance runs again"))
        return out

    return run


def health_transitions(
    store: Store, checks: list[tuple[str, bool, str]], now: datetime,
    messages: Callable[[list[tuple[str, str, str]]], list[dict[str, Any]]] | None = None,
) -> list[tuple[str, str, str]]:
    """Record and return the checks whose state changed: (check_key, 'firing'|'resolved', detail).
    A check never seen firing is not reported as resolved. `messages(changes)` gives notification
    rows (queued) committed in the same transaction, so a kill cannot record a transition and
    lose its message."""
    _, rows = store.query(
        f"SELECT check_key, arg_max(state, changed_at) FROM {LAKE}.alert_health GROUP BY check_key"
    )
    state = dict(rows)
    changes = []
    for key, firing, detail in checks:
        was = state.get(key)
        if firing and was != "firing":
            changes.append((key, "firing", detail))
        elif not firing and was == "firing":
            changes.append((key, "resolved", detail))
    if changes:
        queued = messages(changes) if messages is not None else []
        with store.transaction() as con:
            _insert(con, "alert_health", [{"check_key": k, "state": s, "detail": d, "changed_at": now}
                                          for k, s, d in changes])
            _insert(con, "alert_notifications", queued)
    return changes
