-- New stories per topic per day: a story counts once, on the day it first matched the topic,
-- however many outlets carried it.
WITH first_match AS (
    SELECT topic, story_id, min(matched_at) AS first_at
    FROM topic_matches
    WHERE level = 'alert'
    GROUP BY topic, story_id
)
SELECT CAST(date_trunc('day', first_at) AS DATE) AS day, topic, count(*) AS stories
FROM first_match
GROUP BY ALL
ORDER BY day, topic;
