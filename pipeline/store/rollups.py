"""Rollups for analysts: per hour and per day, counts per topic, per outlet, overall and per feed.

Consumes what `Store.load_batch` is about to insert (article, member, match, outbox and
disposition rows) and writes, inside the same transaction, the rows of migration 005:

* `rollup_counts`: per (grain, bucket, dim, value): articles, copies, distinct stories, new
  stories, distinct outlets, wire-credited articles. dim is 'topic' (alert level),
  'topic_mention' (mention level), 'outlet' or 'all'.
* `rollup_feed`: items per (grain, bucket, feed, final disposition).
* `rollup_members`: which stories and outlets a bucket has counted, so the next batch in the same
  bucket adds only new ones. That keeps the distinct counts exact while every row stays a sum.

The bucket is the hour/day of the load (`now`), so a batch touches two buckets (its hour and its
day) and a bucket closes for good when its hour or day is over. Maintenance (`compact`) then folds
each bucket's per-batch rows into one and drops the member rows of closed buckets: the rollups
stay as small as (days x topics), whatever the number of articles, and the member probe made
here reads only the current buckets.

`rebuild` computes the same figures from the base tables; the migration's backfill uses it and
the tests compare it with what the batches wrote.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import duckdb

LAKE = "lake"
GRAINS = ("hour", "day")
_COUNT_COLS = ("articles", "copies", "stories", "stories_new", "outlets", "wire_articles")


def bucket_of(ts: datetime, grain: str) -> datetime:
    """The start of the hour or day (UTC) holding `ts` (an aware datetime)."""
    if grain == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _outlet(row: dict[str, Any]) -> str:
    return row.get("sitename") or row["feed_id"]


def write_batch(
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    *,
    articles: Sequence[dict[str, Any]],
    members: Sequence[dict[str, Any]],
    matches: Sequence[dict[str, Any]],
    stories: Sequence[dict[str, Any]],
    outbox: Sequence[dict[str, Any]],
    dispositions: Sequence[dict[str, Any]],
    feed_of: dict[str, str],
) -> None:
    """Add one batch to the rollups. Call inside the batch's transaction, with its row dicts.

    `dispositions` are the items' final dispositions (not those kept pending for a retry);
    `feed_of` maps their item ids to feed ids.
    """
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(_COUNT_COLS, 0))
    want: set[tuple[str, str, str, str]] = set()  # (dim, value, kind, member) to count once per bucket
    by_article = {a["article_id"]: a for a in articles}
    for a in articles:
        wire = 1 if a.get("wire_agency") else 0
        for key in (("all", ""), ("outlet", _outlet(a))):
            c = counts[key]
            c["articles"] += 1
            c["wire_articles"] += wire
    for m in members:
        o = _outlet(m)
        for dim, value in (("all", ""), ("outlet", o)):
            counts[(dim, value)]["copies"] += 1
            want.add((dim, value, "story", m["story_id"]))
            want.add((dim, value, "outlet", o))
    for s in stories:
        counts[("all", "")]["stories_new"] += 1
        counts[("outlet", s.get("first_sitename") or s["first_feed_id"])]["stories_new"] += 1
    level_of: dict[tuple[str, str], str] = {}
    for m in matches:
        a = by_article[m["article_id"]]
        dim = "topic" if m["level"] == "alert" else "topic_mention"
        level_of[(m["article_id"], m["topic"])] = dim
        c = counts[(dim, m["topic"])]
        c["articles"] += 1
        c["copies"] += 1
        c["wire_articles"] += 1 if a.get("wire_agency") else 0
        want.add((dim, m["topic"], "story", m["story_id"]))
        want.add((dim, m["topic"], "outlet", _outlet(a)))
    for o in outbox:
        counts[(level_of.get((o["article_id"], o["topic"]), "topic"), o["topic"])]["stories_new"] += 1

    buckets = {g: bucket_of(now, g) for g in GRAINS}
    new_members = _new_members(con, buckets, want)
    rows, member_rows = [], []
    for g, b in buckets.items():
        distinct: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"stories": 0, "outlets": 0})
        for dim, value, kind, member in sorted(new_members[g]):
            distinct[(dim, value)]["stories" if kind == "story" else "outlets"] += 1
            member_rows.append({"grain": g, "bucket": b, "dim": dim, "value": value, "kind": kind, "member": member})
        for (dim, value), c in counts.items():
            rows.append({"grain": g, "bucket": b, "dim": dim, "value": value, **c, **distinct[(dim, value)]})
    feed_counts: dict[tuple[str, str], int] = defaultdict(int)
    for d in dispositions:
        feed_counts[(feed_of[d["item_id"]], d["disposition"])] += 1
    feed_rows = [
        {"grain": g, "bucket": b, "feed_id": f, "disposition": disp, "items": n}
        for g, b in buckets.items()
        for (f, disp), n in sorted(feed_counts.items())
    ]
    _insert(con, "rollup_counts", rows)
    _insert(con, "rollup_members", member_rows)
    _insert(con, "rollup_feed", feed_rows)


def _new_members(
    con: duckdb.DuckDBPyConnection, buckets: dict[str, datetime], want: set[tuple[str, str, str, str]]
) -> dict[str, set[tuple[str, str, str, str]]]:
    """Per grain, those of `want` that the batch's bucket has not counted yet.

    The probe reads only the rows of the two current buckets; maintenance keeps no others.
    """
    out: dict[str, set[tuple[str, str, str, str]]] = {g: set(want) for g in GRAINS}
    if not want:
        return out
    import pyarrow as pa

    cand = pa.Table.from_pylist([{"dim": d, "value": v, "kind": k, "member": m} for d, v, k, m in want])
    con.register("_cand", cand)
    try:
        rows = con.execute(
            f"""SELECT r.grain, c.dim, c.value, c.kind, c.member
                FROM (SELECT * FROM {LAKE}.rollup_members
                      WHERE (grain = 'hour' AND bucket = ?) OR (grain = 'day' AND bucket = ?)) r
                JOIN _cand c
                  ON r.dim = c.dim AND r.value = c.value AND r.kind = c.kind AND r.member = c.member""",
            [buckets["hour"], buckets["day"]],
        ).fetchall()
    finally:
        con.unregister("_cand")
    for g, *key in rows:
        out[g].discard(tuple(key))  # type: ignore[arg-type]
    return out


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    import pyarrow as pa

    data = pa.Table.from_pylist(rows)
    cols = ", ".join(data.column_names)
    con.register("_rollup_rows", data)
    try:
        con.execute(f"INSERT INTO {LAKE}.{table} ({cols}) SELECT {cols} FROM _rollup_rows")
    finally:
        con.unregister("_rollup_rows")


# --- the same figures from the base tables ---------------------------------------------------------
#
# Definitions match write_batch: the bucket is the load time (articles.stored_at =
# topic_matches.matched_at = items.disposition_at = alert_outbox.created_at). Slow on a large
# store: for the backfill of a store older than the rollups, and for the tests' comparison.

_BASE_COUNTS = """
WITH a AS (
    SELECT article_id, story_id, coalesce(sitename, feed_id) AS outlet, wire_agency,
           date_trunc('{g}', stored_at) AS bucket
    FROM {lake}.articles
),
m AS (
    SELECT m.story_id, coalesce(m.sitename, m.feed_id) AS outlet, date_trunc('{g}', i.disposition_at) AS bucket
    FROM {lake}.story_members m JOIN {lake}.items i USING (item_id)
),
s AS (
    SELECT coalesce(s.first_sitename, s.first_feed_id) AS outlet, a.bucket
    FROM {lake}.stories s JOIN a ON a.article_id = s.first_article_id
),
t AS (
    SELECT CASE WHEN tm.level = 'alert' THEN 'topic' ELSE 'topic_mention' END AS dim, tm.topic,
           tm.story_id, tm.article_id, a.outlet, a.wire_agency, date_trunc('{g}', tm.matched_at) AS bucket
    FROM {lake}.topic_matches tm JOIN a USING (article_id)
),
o AS (
    SELECT t.dim, o.topic, date_trunc('{g}', o.created_at) AS bucket
    FROM {lake}.alert_outbox o JOIN t ON t.article_id = o.article_id AND t.topic = o.topic
),
parts AS (
    SELECT bucket, 'all' AS dim, '' AS value, count(*) AS articles, 0 AS copies, 0 AS stories,
           0 AS stories_new, 0 AS outlets, count(wire_agency) AS wire_articles FROM a GROUP BY ALL
    UNION ALL
    SELECT bucket, 'outlet', outlet, count(*), 0, 0, 0, 0, count(wire_agency) FROM a GROUP BY ALL
    UNION ALL
    SELECT bucket, 'all', '', 0, count(*), count(DISTINCT story_id), 0, count(DISTINCT outlet), 0 FROM m GROUP BY ALL
    UNION ALL
    SELECT bucket, 'outlet', outlet, 0, count(*), count(DISTINCT story_id), 0, 1, 0 FROM m GROUP BY ALL
    UNION ALL
    SELECT bucket, 'all', '', 0, 0, 0, count(*), 0, 0 FROM s GROUP BY ALL
    UNION ALL
    SELECT bucket, 'outlet', outlet, 0, 0, 0, count(*), 0, 0 FROM s GROUP BY ALL
    UNION ALL
    SELECT bucket, dim, topic, count(*), count(*), count(DISTINCT story_id), 0, count(DISTINCT outlet),
           count(wire_agency) FROM t GROUP BY ALL
    UNION ALL
    SELECT bucket, dim, topic, 0, 0, 0, count(*), 0, 0 FROM o GROUP BY ALL
)
SELECT '{g}' AS grain, bucket, dim, value, sum(articles)::BIGINT AS articles, sum(copies)::BIGINT AS copies,
       sum(stories)::BIGINT AS stories, sum(stories_new)::BIGINT AS stories_new,
       sum(outlets)::BIGINT AS outlets, sum(wire_articles)::BIGINT AS wire_articles
FROM parts GROUP BY ALL
"""

_BASE_FEED = """
SELECT '{g}' AS grain, date_trunc('{g}', disposition_at) AS bucket, feed_id, disposition, count(*)::BIGINT AS items
FROM {lake}.items WHERE disposition <> 'pending' GROUP BY ALL
"""

# What the current (and the previous) bucket of each grain has counted, for a backfill.
_BASE_MEMBERS = """
WITH a AS (
    SELECT article_id, coalesce(sitename, feed_id) AS outlet FROM {lake}.articles
),
m AS (
    SELECT m.story_id, coalesce(m.sitename, m.feed_id) AS outlet, date_trunc('{g}', i.disposition_at) AS bucket
    FROM {lake}.story_members m JOIN {lake}.items i USING (item_id)
    WHERE i.disposition_at >= CAST(? AS TIMESTAMPTZ)
),
t AS (
    SELECT CASE WHEN tm.level = 'alert' THEN 'topic' ELSE 'topic_mention' END AS dim, tm.topic,
           tm.story_id, a.outlet, date_trunc('{g}', tm.matched_at) AS bucket
    FROM {lake}.topic_matches tm JOIN a USING (article_id)
    WHERE tm.matched_at >= CAST(? AS TIMESTAMPTZ)
)
SELECT DISTINCT '{g}' AS grain, bucket, dim, value, kind, member FROM (
    SELECT bucket, 'all' AS dim, '' AS value, 'story' AS kind, story_id AS member FROM m
    UNION ALL SELECT bucket, 'all', '', 'outlet', outlet FROM m
    UNION ALL SELECT bucket, 'outlet', outlet, 'story', story_id FROM m
    UNION ALL SELECT bucket, 'outlet', outlet, 'outlet', outlet FROM m
    UNION ALL SELECT bucket, dim, topic, 'story', story_id FROM t
    UNION ALL SELECT bucket, dim, topic, 'outlet', outlet FROM t
)
"""


def base_counts_sql(grain: str, lake: str = LAKE) -> str:
    """SQL computing the `rollup_counts` rows of one grain from the base tables."""
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}")
    return _BASE_COUNTS.format(g=grain, lake=lake)


def base_feed_sql(grain: str, lake: str = LAKE) -> str:
    """SQL computing the `rollup_feed` rows of one grain from the base tables."""
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}")
    return _BASE_FEED.format(g=grain, lake=lake)


def rebuild(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Replace the rollups with the figures of the base tables, in the caller's transaction.

    Used once, when migration 005 meets a store that already holds articles; with the members
    of the buckets still open at `now`, so the next batch's distinct counts stay exact.
    """
    for table in ("rollup_counts", "rollup_feed", "rollup_members"):
        con.execute(f"DELETE FROM {LAKE}.{table}")
    for g in GRAINS:
        con.execute(f"INSERT INTO {LAKE}.rollup_counts BY NAME {base_counts_sql(g)}")
        con.execute(f"INSERT INTO {LAKE}.rollup_feed BY NAME {base_feed_sql(g)}")
        since = _open_since(now, g)
        con.execute(f"INSERT INTO {LAKE}.rollup_members BY NAME {_BASE_MEMBERS.format(g=g, lake=LAKE)}", [since, since])


def _open_since(now: datetime, grain: str) -> datetime:
    """Buckets from this one on may still receive rows: the current one, and the one before it
    (a margin for a batch whose clock was read just before the hour turned)."""
    step = timedelta(hours=1) if grain == "hour" else timedelta(days=1)
    return bucket_of(now, grain) - step


# --- maintenance -----------------------------------------------------------------------------------


def compact(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, int]:
    """Fold each bucket's per-batch rows into one row, and drop the member rows of closed buckets.

    One transaction of the caller: a reader sees the sums before or after, never a half. Returns
    the rows removed per table.
    """
    out = {}
    for table, key, cols in (
        ("rollup_counts", "grain, bucket, dim, value", _COUNT_COLS),
        ("rollup_feed", "grain, bucket, feed_id, disposition", ("items",)),
    ):
        sums = ", ".join(f"sum({c})::BIGINT AS {c}" for c in cols)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _fold AS SELECT {key}, {sums}, count(*) AS n FROM {LAKE}.{table} "
            f"GROUP BY ALL HAVING count(*) > 1"
        )
        (folded,) = con.execute("SELECT coalesce(sum(n) - count(*), 0) FROM _fold").fetchone()  # type: ignore[misc]
        if folded:
            con.execute(f"DELETE FROM {LAKE}.{table} WHERE ({key}) IN (SELECT ({key}) FROM _fold)")
            con.execute(f"INSERT INTO {LAKE}.{table} BY NAME SELECT * EXCLUDE (n) FROM _fold")
        con.execute("DROP TABLE _fold")
        out[table] = int(folded)
    removed = 0
    for g in GRAINS:
        (n,) = con.execute(  # type: ignore[misc]
            f"SELECT count(*) FROM {LAKE}.rollup_members WHERE grain = ? AND bucket < ?", [g, _open_since(now, g)]
        ).fetchone()
        if n:
            con.execute(f"DELETE FROM {LAKE}.rollup_members WHERE grain = ? AND bucket < ?", [g, _open_since(now, g)])
        removed += int(n)
    out["rollup_members"] = removed
    return out
