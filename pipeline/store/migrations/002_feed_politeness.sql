-- 002: per-feed politeness state (pipeline.models.FeedState): validator self-check, adaptive
-- poll interval, and disabling of feeds that keep failing permanently. Rows written before this
-- migration read NULL in the new columns; the poller treats NULL as the column's default.
ALTER TABLE feed_state ADD COLUMN validators_trusted BOOLEAN;
ALTER TABLE feed_state ADD COLUMN not_modified_count INTEGER;
ALTER TABLE feed_state ADD COLUMN last_full_fetch_at TIMESTAMPTZ;
ALTER TABLE feed_state ADD COLUMN interval_minutes DOUBLE;
ALTER TABLE feed_state ADD COLUMN feed_hint_minutes DOUBLE;
ALTER TABLE feed_state ADD COLUMN idle_polls INTEGER;
ALTER TABLE feed_state ADD COLUMN permanent_streak INTEGER;
ALTER TABLE feed_state ADD COLUMN disabled BOOLEAN;
