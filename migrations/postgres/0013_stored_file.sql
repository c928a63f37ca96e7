-- Mirrors migrations/0013_stored_file.sql: uploaded files and fetched web pages, when
-- `[database] files = "database"` (the default on PostgreSQL). One row per file, its bytes
-- in one BYTEA value (TOASTed: stored out of line, compressed when that helps), at most
-- 1 GB per value, which `ingest.max_upload_bytes` keeps far away.
CREATE TABLE stored_file (
    path       TEXT PRIMARY KEY,
    bytes      BYTEA NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
