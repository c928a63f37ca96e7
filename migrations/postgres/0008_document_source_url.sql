-- Mirrors migrations/0008_document_source_url.sql.
ALTER TABLE document ADD COLUMN source_url TEXT;
ALTER TABLE document ADD COLUMN source_etag TEXT;
ALTER TABLE document ADD COLUMN source_last_modified TEXT;
ALTER TABLE document ADD COLUMN source_sha256 TEXT;
ALTER TABLE document ADD COLUMN source_fetched_at TEXT;
ALTER TABLE document ADD COLUMN source_checked_at TEXT;
ALTER TABLE document ADD COLUMN crawl_id TEXT;
ALTER TABLE document ADD COLUMN crawl_depth BIGINT;
ALTER TABLE document ADD COLUMN crawl_max_depth BIGINT;
ALTER TABLE document ADD COLUMN crawl_max_pages BIGINT;
CREATE INDEX document_crawl ON document (crawl_id) WHERE crawl_id IS NOT NULL;
