-- How a story spread: first outlet, wire agency credited, each outlet and its delay after the first.
SELECT s.story_id,
       any_value(s.title) AS title,
       any_value(s.first_sitename) AS first_outlet,
       any_value(s.wire_agency) AS wire,
       string_agg(coalesce(m.sitename, m.feed_id) || ' (' || m.link || ', +'
                  || CAST(round(epoch(m.seen_at - s.first_seen_at) / 60) AS INTEGER) || ' min)', '; '
                  ORDER BY m.seen_at) AS copies
FROM stories s
JOIN story_members m USING (story_id)
GROUP BY s.story_id
ORDER BY count(*) DESC, s.story_id
LIMIT 50;
