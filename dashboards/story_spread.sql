-- The 50 most copied stories first seen in the last 7 days: first outlet, wire agency credited,
-- and each outlet with its delay after the first. Copies are those seen in the window (a day of
-- margin before it), which bounds the scan of story_members to recent files.
WITH s AS (
    SELECT * FROM stories WHERE first_seen_at >= now() - INTERVAL 7 DAY
),
m AS (
    SELECT * FROM story_members WHERE seen_at >= now() - INTERVAL 8 DAY
)
SELECT s.story_id,
       any_value(s.title) AS title,
       any_value(s.first_sitename) AS first_outlet,
       any_value(s.wire_agency) AS wire,
       count(*) AS copies,
       string_agg(coalesce(m.sitename, m.feed_id) || ' (' || m.link || ', +'
                  || CAST(round(epoch(m.seen_at - s.first_seen_at) / 60) AS INTEGER) || ' min)', '; '
                  ORDER BY m.seen_at) AS spread
FROM s
JOIN m USING (story_id)
GROUP BY s.story_id
ORDER BY count(*) DESC, s.story_id
LIMIT 50;
