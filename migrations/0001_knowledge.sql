-- Knowledge bases, their documents and chunks, and the ingestion queue.
-- SQLite is the source of truth; the BM25 (tantivy) and vector (hnsw) indexes under
-- data/kbs/<kb_id>/ are derived from `chunk` and catch up by `seq` (see chunk.seq).

-- A knowledge base: a named set of documents searched together.
CREATE TABLE kb (
    kb_id           TEXT PRIMARY KEY,                 -- UUID
    name            TEXT NOT NULL UNIQUE,
    description     TEXT NOT NULL DEFAULT '',
    split_json      TEXT NOT NULL,                    -- ingest::SplitSettings, default for uploads
    clean_json      TEXT NOT NULL,                    -- ingest::CleanSettings, default for uploads
    embedding_model TEXT NOT NULL,                    -- model id the vectors were made with
    embedding_dims  INTEGER NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- An uploaded file (or pasted text) and where it is in its life:
-- queued → processing → indexed | failed.
CREATE TABLE document (
    document_id   TEXT PRIMARY KEY,                   -- UUID
    kb_id         TEXT NOT NULL REFERENCES kb (kb_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,                      -- the client's file name, display only
    kind          TEXT,                               -- pdf, docx, … once sniffed
    bytes         INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    file_path     TEXT NOT NULL,                      -- relative to the data dir
    status        TEXT NOT NULL DEFAULT 'queued',
    error_code    TEXT,
    error_message TEXT,
    is_enabled    INTEGER NOT NULL DEFAULT 1,         -- disabled documents are never retrieved
    chunk_count   INTEGER NOT NULL DEFAULT 0,
    page_count    INTEGER,
    split_json    TEXT,                               -- per-upload override of kb.split_json
    clean_json    TEXT,                               -- per-upload override of kb.clean_json
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- The same bytes twice in one KB are a duplicate, reported rather than re-ingested.
CREATE UNIQUE INDEX document_kb_sha256 ON document (kb_id, sha256);
CREATE INDEX document_kb_created ON document (kb_id, created_at);

-- A piece of a document with its vector. Rows are soft-deleted (is_deleted) so the
-- indexes can learn of the deletion by seq; `zhiku reindex` purges them.
CREATE TABLE chunk (
    chunk_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    kb_id        TEXT NOT NULL,
    document_id  TEXT NOT NULL,                       -- no FK: outlives its document as a tombstone
    ordinal      INTEGER NOT NULL,                    -- position in the document, from 0
    page         INTEGER,                             -- 1-based page for paged documents
    start_byte   INTEGER NOT NULL,                    -- offsets within the extracted page/section
    end_byte     INTEGER NOT NULL,
    text         TEXT NOT NULL,
    token_count  INTEGER NOT NULL,
    text_sha256  TEXT NOT NULL,                       -- reuse a vector for identical text
    embedding    BLOB NOT NULL,                       -- f32 little-endian, kb.embedding_dims long
    is_enabled   INTEGER NOT NULL DEFAULT 1,
    is_deleted   INTEGER NOT NULL DEFAULT 0,
    -- Bumped from counter 'chunk_seq' on every change to the row. Each index stores the
    -- highest seq it has applied and replays newer rows; the vector index keys points by
    -- seq, so an edited chunk's old vector can never be matched to its new text.
    seq          INTEGER NOT NULL UNIQUE,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX chunk_kb_seq ON chunk (kb_id, seq);
CREATE INDEX chunk_document_ordinal ON chunk (document_id, ordinal);
CREATE INDEX chunk_kb_text_sha256 ON chunk (kb_id, text_sha256);

-- Monotonic counters that survive deletes (MAX(seq) would not).
CREATE TABLE counter (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counter (name, value) VALUES ('chunk_seq', 0);

-- The durable ingestion queue, owned by the ingest crate.
-- status: enqueued | processing | succeeded | failed | canceled. A job found 'processing'
-- at start-up was interrupted by a crash and goes back to 'enqueued'.
CREATE TABLE ingest_job (
    job_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id   TEXT NOT NULL,
    kb_id         TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'enqueued',
    attempts      INTEGER NOT NULL DEFAULT 0,         -- claims so far
    stage         TEXT,                               -- extract | split | embed | index
    progress      REAL NOT NULL DEFAULT 0,            -- 0..1 within the job
    error_code    TEXT,
    error_message TEXT,
    enqueued_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at    TEXT,
    finished_at   TEXT
);
CREATE INDEX ingest_job_status ON ingest_job (status, job_id);
CREATE INDEX ingest_job_document ON ingest_job (document_id);
