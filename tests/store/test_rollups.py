"""Rollups written with each batch equal the same figures computed from the base tables."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.models import Article, Evidence, FeedItem, FeedState, ItemResult, StoryAssignment, TopicMatch
from pipeline.store import Store, rollups

T0 = datetime(2025, 8, 1, 22, 10, tzinfo=UTC)
TOPICS = ("sanctions", "ultimatum", "harvest")
OUTLETS = ("Site A", "Site B", "Site C", None)  # None: the outlet is the feed id
FEEDS = ("f1", "f2", "f3")


def _random_batches(seed: int, n_batches: int) -> list[tuple[datetime, list[FeedItem], list[ItemResult]]]:
    """Batches of a plausible mix: originals, rewrites and exact copies of earlier stories, the
    same article again, failures, mentions and alerts, spread over several hours and two days."""
    rng = random.Random(seed)
    out = []
    n = 0
    stories: list[tuple[str, str]] = []  # (story id, first article id)
    articles: list[str] = []
    now = T0
    for _ in range(n_batches):
        now += timedelta(minutes=rng.choice((7, 20, 45, 70)))
        items, results = [], []
        for _ in range(rng.randint(1, 9)):
            n += 1
            feed = rng.choice(FEEDS)
            it = FeedItem(f"i{n}", feed, f"g{n}", f"https://example.org/{n}", f"title {n}", "", now, now)
            items.append(it)
            kind = rng.random()
            site = rng.choice(OUTLETS)
            if kind < 0.1:
                results.append(ItemResult(it, "download_failed", "HTTP 404"))
                continue
            if kind < 0.2:
                results.append(ItemResult(it, "too_short", "80 chars"))
                continue
            aid = f"a{n}" if kind > 0.3 or not articles else rng.choice(articles)  # the same URL again
            art = Article(aid, it.item_id, feed, it.url, it.url, f"T{n}", f"text {n}", now, None, site, "en", f"h{n}", now)
            if stories and kind < 0.4:
                sid, first = rng.choice(stories)
                asg = StoryAssignment(aid, sid, "exact_copy", first, 1.0)
                results.append(ItemResult(it, "exact_copy", "same text", art, asg))
                continue
            if stories and kind < 0.7:
                sid, first = rng.choice(stories)
                asg = StoryAssignment(aid, sid, "rewrite", first, 0.7)
            else:
                sid = f"s{n}"
                asg = StoryAssignment(aid, sid, "original", None, 1.0)
                stories.append((sid, aid))
            articles.append(aid)
            matches = tuple(
                TopicMatch(aid, t, 0.8, lvl, (Evidence("rule", "r", "title", ()),), alert=(lvl == "alert"))
                for t in TOPICS
                if (lvl := rng.choice(("alert", "mention", None, None))) is not None
            )
            wire = rng.choice(("Reuters", None, None))
            results.append(ItemResult(it, "stored", None, art, asg, matches, wire))
        out.append((now, items, results))
    return out


def _load(store: Store, batches) -> None:
    for i, (now, items, results) in enumerate(batches):
        store.record_poll(FeedState(items[0].feed_id), fetched_at=now, outcome="ok", status=200, error_kind=None,
                          error=None, duration_ms=1, items=items)
        store.load_batch(f"b{i}", results, now=now, runner="test", started_at=now)


def _rolled(store: Store) -> tuple[dict, dict]:
    _, counts = store.query(
        "SELECT grain, bucket, dim, value, sum(articles), sum(copies), sum(stories), sum(stories_new), "
        "sum(outlets), sum(wire_articles) FROM rollup_counts GROUP BY ALL"
    )
    _, feeds = store.query("SELECT grain, bucket, feed_id, disposition, sum(items) FROM rollup_feed GROUP BY ALL")
    return ({r[:4]: tuple(int(x) for x in r[4:]) for r in counts}, {r[:4]: int(r[4]) for r in feeds})


def _from_base(store: Store) -> tuple[dict, dict]:
    counts, feeds = {}, {}
    for g in rollups.GRAINS:
        _, rows = store.query(rollups.base_counts_sql(g))
        counts.update({r[:4]: tuple(int(x) for x in r[4:]) for r in rows})
        _, rows = store.query(rollups.base_feed_sql(g))
        feeds.update({r[:4]: int(r[4]) for r in rows})
    return counts, feeds


def test_rollups_equal_the_base_tables_across_hours_days_and_compaction(tmp_path: Path) -> None:
    batches = _random_batches(seed=12, n_batches=40)
    with Store.open(tmp_path / "d") as store:
        _load(store, batches[:25])
        # Maintenance folds the rows of each bucket and drops the members of closed buckets;
        # the batches after it must still count distinct stories and outlets exactly.
        with store.transaction() as con:
            removed = rollups.compact(con, batches[24][0])
        assert removed["rollup_counts"] > 0 and removed["rollup_members"] > 0
        _load(store, batches[25:])
        rolled, base = _rolled(store), _from_base(store)
        assert rolled[0] == base[0]
        assert rolled[1] == base[1]
        # Not vacuous: several hours and days, every dim, distinct counts below plain counts.
        assert {k[2] for k in rolled[0]} == {"all", "outlet", "topic", "topic_mention"}
        assert len({k[1] for k in rolled[0] if k[0] == "day"}) >= 2
        assert len({k[1] for k in rolled[0] if k[0] == "hour"}) >= 10
        day_all = [v for k, v in rolled[0].items() if k[0] == "day" and k[2] == "all"]
        assert any(v[2] < v[1] for v in day_all)  # fewer stories than copies: copies folded
        assert sum(v[5] for v in day_all) > 0  # wire-credited articles counted
        with store.transaction() as con:
            rollups.compact(con, batches[-1][0] + timedelta(days=3))
        assert _rolled(store) == rolled  # compaction changes no figure
        assert store.scalar("SELECT count(*) FROM rollup_members") == 0


def test_a_store_from_before_the_rollups_is_backfilled_from_its_base_tables(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d") as store:
        _load(store, _random_batches(seed=5, n_batches=12))
        # Back to the schema before migration 005, with the data kept.
        for table in ("rollup_counts", "rollup_feed", "rollup_members"):
            store.query(f"DROP TABLE {table}")
        store.query("ALTER TABLE articles DROP COLUMN wire_agency")
        store.query("DELETE FROM schema_migrations WHERE version = 5")
    with Store.open(tmp_path / "d") as store:  # migrates to 005, which backfills
        assert store.scalar("SELECT count(*) FROM rollup_counts") > 0
        assert _rolled(store) == _from_base(store)
