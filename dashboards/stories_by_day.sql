-- Stories first seen per day, with how many copies and distinct outlets each drew.
SELECT CAST(date_trunc('day', s.first_seen_at) AS DATE) AS day,
       s.story_id,
       any_value(s.title) AS title,
       count(m.item_id) AS copies,
       count(DISTINCT coalesce(m.sitename, m.feed_id)) AS outlets
FROM stories s
JOIN story_members m USING (story_id)
GROUP BY ALL
ORDER BY day DESC, copies DESC;
