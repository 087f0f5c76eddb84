"""Every query behind the dashboard, as SQL an analyst can copy into `newsmon query`.

Trends read the rollups (`rollup_counts`, `rollup_feed`; migration 005), whose size grows with
days x topics, not with articles, so a page costs the same on a store of any size. Queries on
base tables are bounded by a time window on a column the rows were written in order of
(stored_at, seen_at, matched_at, created_at): DuckLake prunes the Parquet files outside it.

A query is built from `Filters` (the page's date range and topic) and carries its parameters;
`display_sql` inlines them for the reader (shown under each chart and table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

DEFAULT_DAYS = 30
MAX_DAYS = 3660


@dataclass(frozen=True)
class Filters:
    """What a page shows: days `start`..`end` (inclusive, UTC) and optionally one topic."""

    start: date
    end: date
    topic: str = ""
    limit: int = 25

    @classmethod
    def default(cls, today: date | None = None, *, days: int = DEFAULT_DAYS, topic: str = "") -> Filters:
        end = today or datetime.now(UTC).date()
        return cls(start=end - timedelta(days=days - 1), end=end, topic=topic)

    @classmethod
    def parse(cls, args: dict[str, str], today: date | None = None) -> Filters:
        """From a page's query string (`from`, `to`, `topic`, `limit`); a bad value raises ValueError."""
        d = cls.default(today)
        try:
            start = date.fromisoformat(args["from"]) if args.get("from") else d.start
            end = date.fromisoformat(args["to"]) if args.get("to") else d.end
        except ValueError:
            raise ValueError("from/to: use a date like 2026-01-31") from None
        if start > end:
            raise ValueError("from is after to")
        if (end - start).days > MAX_DAYS:
            raise ValueError(f"a range of at most {MAX_DAYS} days")
        topic = args.get("topic", "").strip()
        if topic and not re.fullmatch(r"[\w.:-]{1,100}", topic):
            raise ValueError("topic: an id of letters, digits, '_', '-', '.' or ':'")
        try:
            limit = max(1, min(200, int(args.get("limit") or d.limit)))
        except ValueError:
            raise ValueError("limit: a number") from None
        return cls(start=start, end=end, topic=topic, limit=limit)

    @property
    def ts_from(self) -> datetime:
        return datetime.combine(self.start, time(), UTC)

    @property
    def ts_to(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)

    def args(self, **over: Any) -> dict[str, str]:
        out = {"from": self.start.isoformat(), "to": self.end.isoformat(), "topic": self.topic}
        out.update({k: str(v) for k, v in over.items()})
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class Query:
    name: str          # stable: the CSV file's name
    title: str
    sql: str
    params: list[Any] = field(default_factory=list)
    # Reads only small, often-written tables (the alert and dead-letter logs, whose rows DuckLake
    # keeps inlined in its catalog): run without join ordering (app.Readers), whose cardinality
    # estimates read their statistics from the catalog and cost more than the query.
    small_tables: bool = False

    @property
    def display_sql(self) -> str:
        """The SQL with its parameters written in, to paste into `newsmon query`."""
        parts = self.sql.strip().split("?")
        out = [parts[0]]
        for value, rest in zip(self.params, parts[1:], strict=True):
            out.append(_literal(value) + rest)
        return "".join(out)


def _literal(v: Any) -> str:
    if isinstance(v, datetime):
        return f"TIMESTAMPTZ '{v.isoformat()}'"
    if isinstance(v, date):
        return f"DATE '{v.isoformat()}'"
    if isinstance(v, int | float):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def _topic_clause(f: Filters, column: str = "value") -> tuple[str, list[Any]]:
    return (f" AND {column} = ?", [f.topic]) if f.topic else ("", [])


# --- overview --------------------------------------------------------------------------------------


def overview_topics(f: Filters) -> Query:
    tc, tp = _topic_clause(f)
    return Query(
        "overview_topics", "Per topic per day: unique stories against all copies, wire share, alerts",
        f"""SELECT CAST(bucket AS DATE) AS day, value AS topic,
       sum(stories) AS unique_stories, sum(copies) AS copies, sum(articles) AS articles,
       round(sum(wire_articles) / nullif(sum(articles), 0), 3) AS wire_share,
       sum(stories_new) AS alerts
FROM rollup_counts
WHERE grain = 'day' AND dim = 'topic' AND bucket >= ? AND bucket < ?{tc}
GROUP BY ALL
ORDER BY day, topic""",
        [f.ts_from, f.ts_to, *tp],
    )


def overview_all(f: Filters) -> Query:
    return Query(
        "overview_all", "All articles per day: unique stories against all copies, wire share",
        """SELECT CAST(bucket AS DATE) AS day, sum(stories) AS unique_stories, sum(copies) AS copies,
       sum(articles) AS articles, sum(stories_new) AS stories_started,
       round(sum(wire_articles) / nullif(sum(articles), 0), 3) AS wire_share
FROM rollup_counts
WHERE grain = 'day' AND dim = 'all' AND bucket >= ? AND bucket < ?
GROUP BY ALL
ORDER BY day""",
        [f.ts_from, f.ts_to],
    )


def overview_totals(f: Filters) -> Query:
    tc, tp = _topic_clause(f)
    return Query(
        "overview_totals", "Per topic over the range",
        f"""SELECT value AS topic, sum(articles) AS articles, sum(copies) AS copies,
       sum(stories) AS story_days, sum(stories_new) AS alerts,
       round(sum(wire_articles) / nullif(sum(articles), 0), 3) AS wire_share
FROM rollup_counts
WHERE grain = 'day' AND dim = 'topic' AND bucket >= ? AND bucket < ?{tc}
GROUP BY ALL
ORDER BY alerts DESC, articles DESC, topic""",
        [f.ts_from, f.ts_to, *tp],
    )


def topic_ids(f: Filters) -> Query:
    return Query(
        "topic_ids", "Topics with matches in the range",
        """SELECT DISTINCT value AS topic FROM rollup_counts
WHERE grain = 'day' AND dim IN ('topic', 'topic_mention') AND bucket >= ? AND bucket < ?
ORDER BY topic""",
        [f.ts_from, f.ts_to],
    )


# --- stories ---------------------------------------------------------------------------------------


def top_stories(f: Filters) -> Query:
    """The most carried stories first seen in the range. Members are those seen from the start of
    the range on (a story's copies come after its first article), which bounds the scan."""
    topic_join, tp = "", []
    if f.topic:
        topic_join = """
    SEMI JOIN (SELECT story_id FROM topic_matches
               WHERE topic = ? AND matched_at >= ? AND coalesce(backfill, false) = false) t USING (story_id)"""
        tp = [f.topic, f.ts_from]
    return Query(
        "top_stories", "Top stories first seen in the range (by copies)",
        f"""WITH s AS (
    SELECT story_id, title, first_sitename, first_feed_id, first_seen_at, wire_agency FROM stories
    WHERE first_seen_at >= ? AND first_seen_at < ?
),
m AS (
    SELECT story_id, coalesce(sitename, feed_id) AS outlet FROM story_members
    WHERE seen_at >= ?
),
top AS (
    SELECT story_id, count(*) AS copies, count(DISTINCT outlet) AS outlets
    FROM m SEMI JOIN s USING (story_id){topic_join}
    GROUP BY story_id ORDER BY copies DESC, outlets DESC, story_id LIMIT ?
)
SELECT s.story_id, s.title, coalesce(s.first_sitename, s.first_feed_id) AS first_outlet,
       s.first_seen_at, s.wire_agency AS wire, top.outlets, top.copies
FROM top JOIN s USING (story_id)
ORDER BY top.copies DESC, top.outlets DESC, s.story_id""",
        [f.ts_from, f.ts_to, f.ts_from, *tp, f.limit],
    )


def spread(story_ids: list[str], since: datetime) -> Query:
    marks = ", ".join("?" for _ in story_ids) or "NULL"
    return Query(
        "spread", "Who carried them, when, and as what link",
        f"""SELECT story_id, coalesce(sitename, feed_id) AS outlet, link, score, seen_at, url
FROM story_members
WHERE seen_at >= ? AND story_id IN ({marks})
ORDER BY story_id, seen_at, item_id""",
        [since, *story_ids],
    )


# --- one story -------------------------------------------------------------------------------------


def story_header(story_id: str) -> Query:
    return Query(
        "story", "The story",
        """SELECT story_id, title, coalesce(first_sitename, first_feed_id) AS first_outlet, first_seen_at,
       wire_agency AS wire, first_article_id
FROM stories WHERE story_id = ?""",
        [story_id],
    )


def story_members(story_id: str, since: datetime) -> Query:
    return Query(
        "members", "Every appearance: outlet, link type and score",
        """SELECT seen_at, coalesce(sitename, feed_id) AS outlet, feed_id, link, round(score, 3) AS score,
       url, article_id, matched_article_id
FROM story_members
WHERE story_id = ? AND seen_at >= ?
ORDER BY seen_at, item_id""",
        [story_id, since],
    )


def story_matches(story_id: str, since: datetime) -> Query:
    return Query(
        "matches", "Topic matches and their evidence",
        """SELECT topic, level, round(score, 3) AS score, article_id, matched_at,
       coalesce(backfill, false) AS backfill, CAST(evidence AS VARCHAR) AS evidence
FROM topic_matches
WHERE story_id = ? AND matched_at >= ?
ORDER BY topic, score DESC, article_id""",
        [story_id, since],
    )


def story_alerts(story_id: str, since: datetime) -> Query:
    return Query(
        "alerts", "Alerts sent for it and their deliveries",
        """SELECT o.created_at, o.topic, o.alert_id, d.channel, d.attempt, d.status, d.attempted_at, d.error, d.receipt
FROM alert_outbox o
LEFT JOIN (SELECT * FROM alert_deliveries WHERE attempted_at >= ?) d USING (alert_id)
WHERE o.story_id = ? AND o.created_at >= ?
ORDER BY o.created_at, o.topic, d.attempted_at""",
        [since, story_id, since],
        small_tables=True,
    )


def story_notifications(story_id: str, since: datetime, digests: list[str]) -> Query:
    """The notification log (alert_notifications, migration 007) for the story: its first alerts,
    thread replies, updates of the parent and silenced ones, and the digests that carried one of
    its alerts. A digest has no story of its own: the alert's `folded` delivery names it, and
    `digests` are those names, read by `story_alerts` (its receipts of status folded). Taking them
    from there keeps this a one-table query: on a DuckLake store each table a query joins costs
    the optimizer a catalog read (~40 ms a join under load), and the page runs this one anyway."""
    marks = ", ".join("?" for _ in digests)
    return Query(
        "notifications", "Notification log: first alerts, thread replies, updates, digests, silenced",
        f"""SELECT noted_at, kind, status, route, channel, topic, seq, attempt, outlets, copies,
       receipt, thread, left(detail, 160) AS detail
FROM alert_notifications
WHERE noted_at >= ? AND {f"(story_id = ? OR notification_id IN ({marks}))" if digests else "story_id = ?"}
ORDER BY noted_at, notification_id, status""",
        [since, story_id, *digests],
        small_tables=True,
    )


# --- topics ----------------------------------------------------------------------------------------


def topic_trend(f: Filters) -> Query:
    return Query(
        "topic_trend", "Trend: articles, stories and outlets per day",
        """SELECT CAST(bucket AS DATE) AS day, sum(articles) AS articles, sum(stories) AS stories,
       sum(outlets) AS outlets, sum(stories_new) AS alerts,
       round(sum(wire_articles) / nullif(sum(articles), 0), 3) AS wire_share
FROM rollup_counts
WHERE grain = 'day' AND dim = 'topic' AND value = ? AND bucket >= ? AND bucket < ?
GROUP BY ALL
ORDER BY day""",
        [f.topic, f.ts_from, f.ts_to],
    )


def topic_levels(f: Filters) -> Query:
    return Query(
        "topic_matches_per_day", "Matches per day, by level (about the topic / mentions it)",
        """SELECT CAST(bucket AS DATE) AS day, CASE dim WHEN 'topic' THEN 'alert' ELSE 'mention' END AS level,
       sum(articles) AS matches
FROM rollup_counts
WHERE grain = 'day' AND dim IN ('topic', 'topic_mention') AND value = ? AND bucket >= ? AND bucket < ?
GROUP BY ALL
ORDER BY day, level""",
        [f.topic, f.ts_from, f.ts_to],
    )


def topic_outlets(f: Filters) -> Query:
    """Live matches are written in the batch that stores their article (matched_at = stored_at),
    so both sides are bounded by the range."""
    return Query(
        "topic_outlets", "Top outlets (alert-level matches)",
        """SELECT coalesce(a.sitename, a.feed_id) AS outlet, count(*) AS matches, count(DISTINCT tm.story_id) AS stories
FROM (SELECT article_id, story_id FROM topic_matches
      WHERE topic = ? AND level = 'alert' AND matched_at >= ? AND matched_at < ?
        AND coalesce(backfill, false) = false) tm
JOIN (SELECT article_id, sitename, feed_id FROM articles WHERE stored_at >= ? AND stored_at < ?) a USING (article_id)
GROUP BY ALL
ORDER BY matches DESC, outlet
LIMIT 15""",
        [f.topic, f.ts_from, f.ts_to, f.ts_from, f.ts_to],
    )


def topic_backtest(f: Filters) -> Query:
    """What `newsmon rematch` / `topics backtest --apply` recorded: matches over history, marked
    backfill and never alerted, per day the article was stored, against the alerts sent."""
    return Query(
        "topic_backtest", "Backtest: stories the current definition would have alerted, against alerts sent",
        """WITH b AS (
    SELECT tm.story_id, tm.level, CAST(a.stored_at AS DATE) AS day
    FROM topic_matches tm JOIN articles a USING (article_id)
    WHERE tm.topic = ? AND tm.backfill AND a.stored_at >= ? AND a.stored_at < ?
),
sent AS (
    SELECT CAST(created_at AS DATE) AS day, count(*) AS alerts_sent FROM alert_outbox
    WHERE topic = ? AND created_at >= ? AND created_at < ? GROUP BY ALL
),
would AS (
    SELECT day, count(*) AS backfill_matches,
           count(DISTINCT story_id) FILTER (WHERE level = 'alert'
               AND story_id NOT IN (SELECT story_id FROM alert_outbox WHERE topic = ?)) AS would_alert
    FROM b GROUP BY ALL
)
SELECT coalesce(w.day, s.day) AS day, coalesce(s.alerts_sent, 0) AS alerts_sent,
       coalesce(w.would_alert, 0) AS would_alert, coalesce(w.backfill_matches, 0) AS backfill_matches
FROM would w FULL JOIN sent s USING (day)
ORDER BY day""",
        [f.topic, f.ts_from, f.ts_to, f.topic, f.ts_from, f.ts_to, f.topic],
    )


# --- feeds and pipeline health ---------------------------------------------------------------------


def feed_dispositions(f: Filters) -> Query:
    return Query(
        "dispositions_per_day", "Items by disposition per day",
        """SELECT CAST(bucket AS DATE) AS day, disposition, sum(items) AS items
FROM rollup_feed
WHERE grain = 'day' AND bucket >= ? AND bucket < ?
GROUP BY ALL
ORDER BY day, disposition""",
        [f.ts_from, f.ts_to],
    )


def dead_letters(f: Filters) -> Query:
    return Query(
        "dead_letters", "Dead letters (newest 100)",
        """SELECT created_at, stage, feed_id, key, reason, attempts, left(error, 160) AS error
FROM dead_letters
WHERE created_at >= ? AND created_at < ?
ORDER BY created_at DESC
LIMIT 100""",
        [f.ts_from, f.ts_to],
        small_tables=True,
    )


def batches(f: Filters) -> Query:
    return Query(
        "batches", "Batches: duration and items (newest 500)",
        """SELECT started_at, batch_id, runner, items, stored, alerts, round(duration_seconds, 2) AS duration_seconds
FROM batches
WHERE started_at >= ? AND started_at < ?
ORDER BY started_at DESC
LIMIT 500""",
        [f.ts_from, f.ts_to],
    )


def feed_health(now: datetime) -> Query:
    """Per feed: ok / failing / silent / disabled, by the rules of `newsmon status`
    (pipeline/store/feed_status.sql) but over the items of the last 35 days only, and with the
    feed's mean gap between new items in that window standing for its usual gap (status takes
    the median of its last 30 gaps, which needs every item ever seen: seconds on a large
    store). A feed with no item in 35 days that has had some is silent."""
    return Query(
        "feed_health", "Per feed: ok, failing, silent or disabled",
        """WITH per AS (
    SELECT feed_id, count(*) AS items_35d, count(*) FILTER (seen_at >= ?) / 7.0 AS items_per_day,
           max(seen_at) AS last_new_item, epoch(max(seen_at) - min(seen_at)) / nullif(count(*) - 1, 0) AS usual_gap_s
    FROM items WHERE seen_at >= ? GROUP BY feed_id
)
SELECT f.feed_id,
       CASE WHEN NOT f.enabled THEN 'disabled'
            WHEN s.feed_id IS NULL THEN 'never polled'
            WHEN coalesce(s.disabled, false) THEN 'auto-disabled'
            WHEN s.error_streak > 0 THEN 'failing'
            WHEN s.last_success_at IS NULL THEN 'never fetched'
            WHEN p.last_new_item IS NULL AND coalesce(s.items_total, 0) > 0 THEN 'silent'
            WHEN p.usual_gap_s IS NOT NULL
                 AND epoch(CAST(? AS TIMESTAMPTZ) - p.last_new_item) > greatest(3 * p.usual_gap_s, 86400) THEN 'silent'
            ELSE 'ok' END AS health,
       f.name, s.last_success_at, s.last_error_kind, s.error_streak, s.last_status,
       round(p.items_per_day, 1) AS items_per_day, p.last_new_item, round(p.usual_gap_s / 3600, 1) AS usual_gap_h,
       left(s.last_error, 70) AS last_error
FROM feeds f
LEFT JOIN feed_state s USING (feed_id)
LEFT JOIN per p USING (feed_id)
ORDER BY CASE health WHEN 'auto-disabled' THEN 0 WHEN 'failing' THEN 0 WHEN 'silent' THEN 1
                     WHEN 'never polled' THEN 2 WHEN 'never fetched' THEN 2 WHEN 'disabled' THEN 4 ELSE 3 END,
         f.feed_id""",
        [now - timedelta(days=7), now - timedelta(days=35), now],
    )
