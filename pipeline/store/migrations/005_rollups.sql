-- 005: rollups for analysts (pipeline/store/rollups.py), written in the same transaction as
-- each batch. Append-only: never edit this file once released; add 006_*.sql.
--
-- A bucket is the hour or day (UTC, `grain` 'hour' or 'day') in which newsmon stored the article:
-- the batch's load time, which is also articles.stored_at, topic_matches.matched_at and
-- items.disposition_at. Every column is a count to be summed: a batch appends one row per bucket
-- and group it touched, and maintenance folds a bucket's rows into one. Distinct counts (stories,
-- outlets) stay exact because a batch counts only the members new to the bucket (rollup_members).

-- key: (grain, bucket, dim, value). dim 'topic' (alert level), 'topic_mention' (mention level),
-- 'outlet' (coalesce(sitename, feed_id)) or 'all' (value '').
CREATE TABLE rollup_counts (
    grain VARCHAR, bucket TIMESTAMPTZ, dim VARCHAR, value VARCHAR,
    articles BIGINT,       -- stored articles (for a topic: articles matching it)
    copies BIGINT,         -- story appearances: stored articles plus exact copies (story_members)
    stories BIGINT,        -- distinct stories among them
    stories_new BIGINT,    -- 'all'/'outlet': stories started; 'topic': new (topic, story) pairs
    outlets BIGINT,        -- distinct outlets
    wire_articles BIGINT   -- articles whose text credits a wire agency (wire share = / articles)
);

-- key: (grain, bucket, feed_id, disposition). Items given their final disposition, per feed.
CREATE TABLE rollup_feed (
    grain VARCHAR, bucket TIMESTAMPTZ, feed_id VARCHAR, disposition VARCHAR, items BIGINT
);

-- key: (grain, bucket, dim, value, kind, member). What a bucket has counted already, so a later
-- batch in the same bucket adds only new stories/outlets. Only the current buckets need it:
-- maintenance deletes the rows of buckets that have closed.
CREATE TABLE rollup_members (
    grain VARCHAR, bucket TIMESTAMPTZ, dim VARCHAR, value VARCHAR, kind VARCHAR, member VARCHAR
);

-- The wire agency each article's text credits (pipeline.stages.extract.detect_wire_agency), so
-- the wire share can be recomputed from the base table. NULL in rows written before 005.
ALTER TABLE articles ADD COLUMN wire_agency VARCHAR;
