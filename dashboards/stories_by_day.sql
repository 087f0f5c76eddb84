-- Per day over the last 30 days: stories started, stories carried (distinct), articles stored,
-- appearances (articles plus exact copies), distinct outlets, and the wire share. From the rollups.
-- For the stories themselves, see story_spread.sql.
SELECT CAST(bucket AS DATE) AS day,
       sum(stories_new) AS stories_new, sum(stories) AS stories, sum(articles) AS articles,
       sum(copies) AS copies, sum(outlets) AS outlets,
       round(sum(wire_articles) / nullif(sum(articles), 0), 3) AS wire_share
FROM rollup_counts
WHERE grain = 'day' AND dim = 'all' AND bucket >= now() - INTERVAL 30 DAY
GROUP BY ALL
ORDER BY day DESC;
