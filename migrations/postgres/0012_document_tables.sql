-- Mirrors migrations/0012_document_tables.sql.
CREATE TABLE document_table (
    table_id     TEXT PRIMARY KEY,
    document_id  TEXT NOT NULL REFERENCES document (document_id) ON DELETE CASCADE,
    kb_id        TEXT NOT NULL,
    position     BIGINT NOT NULL,
    name         TEXT NOT NULL,
    source       TEXT NOT NULL,
    columns_json TEXT NOT NULL,
    rows_json    TEXT NOT NULL,
    row_count    BIGINT NOT NULL,
    title        TEXT
);
CREATE UNIQUE INDEX document_table_position ON document_table (document_id, position);
CREATE INDEX document_table_kb ON document_table (kb_id);
