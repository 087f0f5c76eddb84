-- Per feed: last success, last error and its class, error streak, items seen, next poll.
SELECT f.feed_id, f.name, s.last_success_at, s.last_status, s.last_error_kind, s.error_streak,
       s.items_total, s.next_due_at, left(s.last_error, 80) AS last_error
FROM feeds f
LEFT JOIN feed_state s USING (feed_id)
ORDER BY s.error_streak DESC NULLS LAST, f.feed_id;
