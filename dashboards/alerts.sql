-- Alerts raised (one per topic and story) and their deliveries per channel.
SELECT o.created_at, o.topic, o.story_id, json_extract_string(o.payload, '$.title') AS title,
       string_agg(d.channel || ':' || d.status || '#' || d.attempt, ', ' ORDER BY d.attempted_at) AS deliveries
FROM alert_outbox o
LEFT JOIN alert_deliveries d USING (alert_id)
GROUP BY ALL
ORDER BY o.created_at DESC;
