-- Analysts' judgements of stored articles for a topic (`newsmon topics label`): training examples
-- for the topic's model. Append-only; the latest row per (topic, article_id) is the judgement.
CREATE TABLE topic_labels (
    article_id VARCHAR, topic VARCHAR, label VARCHAR, labelled_by VARCHAR, labelled_at TIMESTAMPTZ,
    note VARCHAR
);
-- Matches recorded by a backtest applied to history (`newsmon topics backtest --apply`): marked,
-- and never alerted. NULL or false: a match made live by the pipeline.
ALTER TABLE topic_matches ADD COLUMN backfill BOOLEAN;
