-- The 20 outlets that stored the most articles in the last 30 days: articles, appearances,
-- distinct stories carried, stories they were first with, and the wire share. From the rollups.
SELECT value AS outlet, sum(articles) AS articles, sum(copies) AS copies,
       sum(stories) AS stories, sum(stories_new) AS stories_first,
       round(sum(wire_articles) / nullif(sum(articles), 0), 3) AS wire_share
FROM rollup_counts
WHERE grain = 'day' AND dim = 'outlet' AND bucket >= now() - INTERVAL 30 DAY
GROUP BY ALL
ORDER BY articles DESC, outlet
LIMIT 20;
