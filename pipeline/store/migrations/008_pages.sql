-- 008: the fetched page of every stored article (pipeline/pages.py), so `newsmon reprocess` can
-- run the extractor again after an upgrade. Written in the batch's transaction; rows older than
-- `store.keep_pages_days` are deleted by the maintenance job.
--   body:       the HTML, compressed with `codec` (zstd)
--   html_bytes: the HTML's size before compression
-- key: article_id
CREATE TABLE pages (
    article_id VARCHAR, item_id VARCHAR, url VARCHAR, fetched_at TIMESTAMPTZ, stored_at TIMESTAMPTZ,
    codec VARCHAR, html_bytes INTEGER, body BLOB
);
-- Set by `newsmon reprocess` when it replaced an article's text and metadata with a new
-- extraction of its stored page (NULL: as the pipeline extracted it); `extractor` names it.
ALTER TABLE articles ADD COLUMN reextracted_at TIMESTAMPTZ;
ALTER TABLE articles ADD COLUMN extractor VARCHAR;
-- Pages always go to Parquet files, never inlined into the catalog (the other tables' small inserts
-- are, see store/connection.py): a page is ~33 KB, and inlined into the SQLite catalog a batch's
-- pages cost ~27 ms each against ~3 ms in a file (bench/bench_pages.py's first measure), and
-- would swell the catalog until the next flush. DuckLake takes that option only for a committed
-- table, so Store.open sets it right after this migration (ducklake_set_option).
