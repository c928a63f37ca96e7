-- Uploaded files and fetched web pages kept in the database instead of <data_dir>/files
-- (`[database] files = "database"`, PostgreSQL only), so that any node can read the file
-- of a job it takes over. On SQLite files always live in the data directory and this
-- table stays empty: it is here so that the two schemas stay twins.
CREATE TABLE stored_file (
    path       TEXT PRIMARY KEY,                    -- relative to the data dir, as document.file_path names it
    bytes      BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
