-- Feed health for operators (what `newsmon status` prints): last success, last error and its class,
-- error streak, items per day over the last 7 days, and silence: a feed that has shown no new item
-- for longer than three times its own usual gap between items (the median of its last 30 gaps in
-- publication time), and a day at least.
WITH seen AS (
    SELECT feed_id, seen_at, published,
           coalesce(published, seen_at) AS t,
           row_number() OVER (PARTITION BY feed_id ORDER BY coalesce(published, seen_at) DESC) AS rn
    FROM items
),
gaps AS (
    SELECT feed_id, t - lead(t) OVER (PARTITION BY feed_id ORDER BY t DESC) AS gap
    FROM seen WHERE rn <= 31
),
usual AS (
    SELECT feed_id, median(epoch(gap)) AS usual_gap_s FROM gaps WHERE gap IS NOT NULL GROUP BY feed_id
),
-- Items per day over the last 7 days, or over the days the feed has been watched when that is
-- shorter; NULL for a feed watched less than a day (two items in its first hour are not a rate).
recent AS (
    SELECT feed_id,
           CASE WHEN epoch(now() - min(seen_at)) >= 86400
                THEN count(*) FILTER (seen_at >= now() - INTERVAL 7 DAY)
                     / least(7.0, epoch(now() - min(seen_at)) / 86400) END AS items_per_day,
           max(seen_at) AS last_new_item
    FROM items GROUP BY feed_id
)
SELECT f.feed_id,
       CASE WHEN NOT f.enabled THEN 'disabled'
            WHEN s.feed_id IS NULL THEN 'never polled'
            WHEN coalesce(s.disabled, false) THEN 'auto-disabled'
            WHEN s.error_streak > 0 THEN 'failing'
            -- polled, but no answer yet (held by a host's Retry-After, say): not known to be ok
            WHEN s.last_success_at IS NULL THEN 'never fetched'
            WHEN r.last_new_item IS NOT NULL AND u.usual_gap_s IS NOT NULL
                 AND epoch(now() - r.last_new_item) > greatest(3 * u.usual_gap_s, 86400) THEN 'silent'
            ELSE 'ok' END AS health,
       s.last_success_at, s.last_error_kind, s.error_streak, s.last_status,
       round(r.items_per_day, 1) AS items_per_day,
       r.last_new_item,
       round(u.usual_gap_s / 3600, 1) AS usual_gap_h,
       s.next_due_at,
       left(s.last_error, 70) AS last_error
FROM feeds f
LEFT JOIN feed_state s USING (feed_id)
LEFT JOIN recent r USING (feed_id)
LEFT JOIN usual u USING (feed_id)
ORDER BY CASE health WHEN 'auto-disabled' THEN 0 WHEN 'failing' THEN 0 WHEN 'silent' THEN 1 WHEN 'never polled' THEN 2 WHEN 'never fetched' THEN 2 WHEN 'disabled' THEN 4 ELSE 3 END,
         f.feed_id;
