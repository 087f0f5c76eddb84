-- What happened to the feed items of the last 7 days, per feed: one final disposition per item
-- (items still pending are not counted; `newsmon status` shows them). From the rollups.
SELECT feed_id, disposition, sum(items) AS items
FROM rollup_feed
WHERE grain = 'day' AND bucket >= now() - INTERVAL 7 DAY
GROUP BY ALL
ORDER BY feed_id, items DESC;
