-- Per topic per day over the last 90 days (widen the window below for more): articles matching
-- the topic at alert level, distinct stories, new stories (first alert of the topic on the story),
-- distinct outlets, and the share of articles crediting a wire agency. From the rollups
-- (pipeline/store/rollups.py), so it costs the same at any store size.
SELECT CAST(bucket AS DATE) AS day, value AS topic,
       sum(articles) AS articles, sum(stories) AS stories, sum(stories_new) AS stories_new,
       sum(outlets) AS outlets, round(sum(wire_articles) / nullif(sum(articles), 0), 3) AS wire_share
FROM rollup_counts
WHERE grain = 'day' AND dim = 'topic' AND bucket >= now() - INTERVAL 90 DAY
GROUP BY ALL
ORDER BY day, topic;
