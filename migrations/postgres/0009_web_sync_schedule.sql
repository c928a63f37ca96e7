-- Mirrors migrations/0009_web_sync_schedule.sql: a KB's web-page re-sync schedule, what the
-- last check of a web page found wrong, and the sitemap a sitemap's first page stands for.
ALTER TABLE kb ADD COLUMN web_sync_interval_minutes BIGINT;
ALTER TABLE document ADD COLUMN source_error_code TEXT;
ALTER TABLE document ADD COLUMN source_error_message TEXT;
ALTER TABLE document ADD COLUMN crawl_sitemap_url TEXT;
