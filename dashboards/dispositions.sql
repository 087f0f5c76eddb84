-- What happened to every feed item, per feed: one disposition per item.
PIVOT (SELECT feed_id, disposition FROM items)
ON disposition
USING count(*)
ORDER BY feed_id;
