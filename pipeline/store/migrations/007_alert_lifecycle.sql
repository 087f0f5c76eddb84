-- 007: alerts with a lifecycle (pipeline/alert/lifecycle.py). Append-only, like alert_deliveries.

-- The notification log (after Alertmanager's nflog, per story): every message newsmon sent or
-- decided not to send, per route channel. One row per event; a message is claimed ('sending')
-- before the channel is called and its outcome appended after, so a claim without an outcome is
-- a message in doubt after a crash (checked in the channel where it can be).
--   kind:    first (the alert), reply (thread reply / email follow-up), update (chat.update of the
--            parent's outlet count), digest, test, replay, health
--   status:  queued (health, before its claim), sending, sent, transient_error, permanent_error, silenced, folded (into a digest),
--            skipped_empty (a digest with nothing in it), skipped_in_doubt
--   seq:     the reply's number in its thread (1, 2, ...); replies go out strictly in order
--   receipt: the channel's id of the message: Slack ts, email Message-ID, digest id
--   thread:  the parent's receipt (thread_ts / In-Reply-To)
--   outlets, copies: what the message told (the story's outlets and copies then)
--   upto:    the latest story member it covers (seen_at)
-- key: (notification_id, status, noted_at)
CREATE TABLE alert_notifications (
    notification_id VARCHAR, route VARCHAR, channel VARCHAR, kind VARCHAR, alert_id VARCHAR,
    topic VARCHAR, story_id VARCHAR, seq INTEGER, attempt INTEGER, status VARCHAR,
    outlets INTEGER, copies INTEGER, upto TIMESTAMPTZ, receipt VARCHAR, thread VARCHAR,
    broadcast BOOLEAN, detail VARCHAR, noted_at TIMESTAMPTZ, next_attempt_at TIMESTAMPTZ
);

-- key: silence_id. Matchers (NULL = any): topic, story_id, source (outlet or feed id), route.
-- A silence holds from starts_at to ends_at, or until expired_at when expired early.
CREATE TABLE alert_silences (
    silence_id VARCHAR, topic VARCHAR, story_id VARCHAR, source VARCHAR, route VARCHAR,
    starts_at TIMESTAMPTZ, ends_at TIMESTAMPTZ, author VARCHAR, comment VARCHAR,
    created_at TIMESTAMPTZ, expired_at TIMESTAMPTZ
);

-- A channel that answered 429 with Retry-After is not posted to before `until`, across restarts.
-- one row per hold; the latest per channel counts.
CREATE TABLE alert_channel_holds (channel VARCHAR, until TIMESTAMPTZ, reason VARCHAR, set_at TIMESTAMPTZ);

-- Pipeline-health alerts: one row per transition of a check (firing, resolved); the latest per
-- check_key is its state. Each fires once and resolves once.
CREATE TABLE alert_health (check_key VARCHAR, state VARCHAR, detail VARCHAR, changed_at TIMESTAMPTZ);
