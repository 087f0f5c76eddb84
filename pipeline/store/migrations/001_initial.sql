-- 001: the initial schema. Append-only migrations: never edit a released file, add 002_*.sql.
-- DuckLake has no PRIMARY KEY/UNIQUE constraints: uniqueness is kept by the single writer
-- (pipeline.store.Store) through anti-join inserts; the "key" comment names each table's key.

-- key: feed_id. The feeds of sources.yaml, as last loaded.
CREATE TABLE feeds (
    feed_id VARCHAR, url VARCHAR, name VARCHAR, tags VARCHAR[], interval_minutes DOUBLE,
    enabled BOOLEAN, updated_at TIMESTAMPTZ
);

-- key: feed_id. Conditional-GET validators and health of each feed.
CREATE TABLE feed_state (
    feed_id VARCHAR, etag VARCHAR, last_modified VARCHAR, body_hash VARCHAR,
    last_attempt_at TIMESTAMPTZ, last_success_at TIMESTAMPTZ, last_status INTEGER,
    last_error VARCHAR, last_error_kind VARCHAR, error_streak INTEGER, next_due_at TIMESTAMPTZ,
    items_total BIGINT
);

-- one row per poll of a feed.
CREATE TABLE fetch_log (
    feed_id VARCHAR, fetched_at TIMESTAMPTZ, outcome VARCHAR, status INTEGER, error_kind VARCHAR,
    error VARCHAR, new_items INTEGER, duration_ms DOUBLE
);

-- key: item_id. Every feed item ever seen: the durable spool (disposition 'pending') and its fate.
CREATE TABLE items (
    item_id VARCHAR, feed_id VARCHAR, guid VARCHAR, url VARCHAR, title VARCHAR, summary VARCHAR,
    published TIMESTAMPTZ, seen_at TIMESTAMPTZ, disposition VARCHAR, disposition_at TIMESTAMPTZ,
    detail VARCHAR, article_id VARCHAR, batch_id VARCHAR
);

-- key: article_id. One row per distinct article (canonical URL), text and metadata.
CREATE TABLE articles (
    article_id VARCHAR, item_id VARCHAR, feed_id VARCHAR, url VARCHAR, canonical_url VARCHAR,
    title VARCHAR, text VARCHAR, published TIMESTAMPTZ, author VARCHAR, sitename VARCHAR,
    language VARCHAR, text_hash VARCHAR, fetched_at TIMESTAMPTZ, stored_at TIMESTAMPTZ,
    story_id VARCHAR, link VARCHAR, matched_article_id VARCHAR, link_score DOUBLE, batch_id VARCHAR
);

-- key: story_id. Written once, when the story's first article is stored.
CREATE TABLE stories (
    story_id VARCHAR, first_article_id VARCHAR, first_feed_id VARCHAR, first_sitename VARCHAR,
    first_seen_at TIMESTAMPTZ, title VARCHAR, wire_agency VARCHAR
);

-- key: (story_id, item_id). Every appearance of a story: original, copies, rewrites.
CREATE TABLE story_members (
    story_id VARCHAR, article_id VARCHAR, item_id VARCHAR, feed_id VARCHAR, sitename VARCHAR,
    url VARCHAR, link VARCHAR, matched_article_id VARCHAR, score DOUBLE, published TIMESTAMPTZ,
    seen_at TIMESTAMPTZ
);

-- key: (article_id, topic).
CREATE TABLE topic_matches (
    article_id VARCHAR, story_id VARCHAR, topic VARCHAR, score DOUBLE, level VARCHAR,
    evidence JSON, matched_at TIMESTAMPTZ
);

-- key: alert_id = hash(topic, story_id). One row per new (topic, story): the outbox.
CREATE TABLE alert_outbox (
    alert_id VARCHAR, topic VARCHAR, story_id VARCHAR, article_id VARCHAR, score DOUBLE,
    payload JSON, created_at TIMESTAMPTZ
);

-- one row per delivery attempt; an alert is done on a channel once it has 'sent' or 'permanent_error'.
CREATE TABLE alert_deliveries (
    alert_id VARCHAR, channel VARCHAR, attempt INTEGER, status VARCHAR, error VARCHAR,
    attempted_at TIMESTAMPTZ, next_attempt_at TIMESTAMPTZ
);

-- bad records are data: what failed where, replayable.
CREATE TABLE dead_letters (
    stage VARCHAR, key VARCHAR, error VARCHAR, payload JSON, created_at TIMESTAMPTZ
);

-- key: batch_id. One row per Beam batch.
CREATE TABLE batches (
    batch_id VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, runner VARCHAR,
    items INTEGER, stored INTEGER, alerts INTEGER, duration_seconds DOUBLE
);
