-- Alerts raised in the last 7 days (newest 200) and their deliveries per channel.
SELECT o.created_at, o.topic, o.story_id, json_extract_string(o.payload, '$.title') AS title,
       string_agg(d.channel || ':' || d.status || '#' || d.attempt, ', ' ORDER BY d.attempted_at) AS deliveries
FROM alert_outbox o
LEFT JOIN (SELECT * FROM alert_deliveries WHERE attempted_at >= now() - INTERVAL 7 DAY) d USING (alert_id)
WHERE o.created_at >= now() - INTERVAL 7 DAY
GROUP BY ALL
ORDER BY o.created_at DESC
LIMIT 200;
