-- Web pages that stay fresh (issue 21 §3): a knowledge base may re-sync its web pages on a
-- schedule, a sync reports a page that is gone instead of deleting it, and the pages a
-- sitemap listed can be looked for again. When each page was last checked is
-- document.source_checked_at (0008), which the schedule now keeps moving.
-- web_sync_interval_minutes: how often the server re-syncs this KB's web pages by itself;
-- NULL (the default, and every KB before this migration) leaves them to a person's sync.
ALTER TABLE kb ADD COLUMN web_sync_interval_minutes INTEGER;
-- What the last check of a web page found wrong (gone with 404/410, unreachable, refused):
-- the page keeps its status and the text last indexed, and these say why it is stale.
-- NULL when the last check reached the page.
ALTER TABLE document ADD COLUMN source_error_code TEXT;
ALTER TABLE document ADD COLUMN source_error_message TEXT;
-- On the first page a sitemap listed (which stands for the sitemap's pages as a crawl's
-- start page does): the sitemap, read again when that page is synced so pages listed
-- since are added. NULL on every other document.
ALTER TABLE document ADD COLUMN crawl_sitemap_url TEXT;
