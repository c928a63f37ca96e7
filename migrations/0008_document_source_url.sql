-- Web pages as documents (issue 21 §3): a document may come from a URL that the server
-- fetches, and fetches again to re-sync. For such a document `sha256` is the sha256 of
-- "url:" and its address, so the same URL twice in one KB is a duplicate like the same
-- file twice; what the page held is `source_sha256`.
ALTER TABLE document ADD COLUMN source_url TEXT;            -- the address it was fetched from
ALTER TABLE document ADD COLUMN source_etag TEXT;           -- ETag of the last fetch, sent back as If-None-Match
ALTER TABLE document ADD COLUMN source_last_modified TEXT;  -- Last-Modified of the last fetch, sent as If-Modified-Since
ALTER TABLE document ADD COLUMN source_sha256 TEXT;         -- sha256 of the body last fetched
ALTER TABLE document ADD COLUMN source_fetched_at TEXT;     -- NULL until the first fetch succeeds; the job fetches while it is NULL
ALTER TABLE document ADD COLUMN source_checked_at TEXT;     -- last time a sync asked the site, changed or not
-- A crawl: the start page's document id (NULL outside a crawl), how many links away from
-- the start page this page is, and the crawl's bounds, copied on each of its pages so a
-- page's job knows whether to follow its links.
ALTER TABLE document ADD COLUMN crawl_id TEXT;
ALTER TABLE document ADD COLUMN crawl_depth INTEGER;
ALTER TABLE document ADD COLUMN crawl_max_depth INTEGER;
ALTER TABLE document ADD COLUMN crawl_max_pages INTEGER;
CREATE INDEX document_crawl ON document (crawl_id) WHERE crawl_id IS NOT NULL;
