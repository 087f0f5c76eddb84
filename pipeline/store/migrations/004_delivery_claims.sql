-- Deliveries are claimed before the channel is called: a row with status 'sending' is committed
-- first, then the outcome ('sent', 'transient_error', 'permanent_error', 'skipped_in_doubt').
-- A claim without an outcome marks a delivery that was in flight when the process died.
-- receipt: what the channel answered, e.g. the Slack message ts (the anchor of a later thread).
ALTER TABLE alert_deliveries ADD COLUMN receipt VARCHAR;
