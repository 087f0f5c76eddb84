-- 003: what fetching must remember across restarts, and where items that fail for good end up.
-- Append-only: never edit this file once released; add 004_*.sql.

-- key: host. Host-wide holds from a 429/503 with Retry-After (pipeline.fetch.hosts.HostBackoff):
-- no request goes to `host` before `held_until`. Loaded when the daemon starts; rows whose time
-- has passed are deleted.
CREATE TABLE host_holds (
    host VARCHAR, held_until TIMESTAMPTZ, reason VARCHAR, updated_at TIMESTAMPTZ
);

-- Page downloads retried across batches (a transient failure, robots.txt unreachable): failed
-- attempts so far, the earliest time of the next one, and the last error. The item stays
-- 'pending' meanwhile; NULL in rows written before this migration means "never retried".
ALTER TABLE items ADD COLUMN attempts INTEGER;
ALTER TABLE items ADD COLUMN retry_at TIMESTAMPTZ;
ALTER TABLE items ADD COLUMN last_error VARCHAR;

-- key: (stage, key). Dead letters (001): why the record was given up, after how many attempts,
-- which feed and which batch.
ALTER TABLE dead_letters ADD COLUMN reason VARCHAR;
ALTER TABLE dead_letters ADD COLUMN attempts INTEGER;
ALTER TABLE dead_letters ADD COLUMN feed_id VARCHAR;
ALTER TABLE dead_letters ADD COLUMN batch_id VARCHAR;
