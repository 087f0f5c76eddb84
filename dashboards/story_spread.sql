-- The 50 most copied stories first seen in the last 7 days: first outlet, wire agency credited,
-- and each outlet with its delay after the first. Copies are those seen in the window (a day of
-- margin before it), which bounds the scan of story_members to recent files; the top 50 are
-- picked before their spread is spelled out.
WITH s AS (
    SELECT story_id, title, first_sitename, wire_agency, first_seen_at FROM stories
    WHERE first_seen_at >= now() - INTERVAL 7 DAY
),
m AS (
    SELECT story_id, item_id, sitename, feed_id, link, seen_at FROM story_members
    WHERE seen_at >= now() - INTERVAL 8 DAY
),
top AS (
    SELECT story_id, count(*) AS copies FROM m SEMI JOIN s USING (story_id)
    GROUP BY story_id ORDER BY copies DESC, story_id LIMIT 50
)
SELECT s.story_id, s.title, s.first_sitename AS first_outlet, s.wire_agency AS wire, top.copies,
       string_agg(coalesce(m.sitename, m.feed_id) || ' (' || m.link || ', +'
                  || CAST(round(epoch(m.seen_at - s.first_seen_at) / 60) AS INTEGER) || ' min)', '; '
                  ORDER BY m.seen_at, m.item_id) AS spread
FROM top JOIN s USING (story_id) JOIN m USING (story_id)
GROUP BY ALL
ORDER BY top.copies DESC, s.story_id;
