-- Spreadsheets as typed tables (issue 23 §3): every sheet or CSV file with a header is
-- also kept as a table that a bot's table_query tool loads into SQL. Written with the
-- document's chunks (the same transaction) and replaced with them; gone with the
-- document. Stored as JSON: a node loads the tables it queries into memory.
CREATE TABLE document_table (
    table_id     TEXT PRIMARY KEY,                    -- UUID, new on every write: a loaded copy is current while its ids are
    document_id  TEXT NOT NULL REFERENCES document (document_id) ON DELETE CASCADE,
    kb_id        TEXT NOT NULL,
    position     INTEGER NOT NULL,                    -- the table's place in its document, from 0
    name         TEXT NOT NULL,                       -- an SQL identifier (ingest::tables::Table::name)
    source       TEXT NOT NULL,                       -- the sheet's name, or the file's
    columns_json TEXT NOT NULL,                       -- [ingest::tables::Column]
    rows_json    TEXT NOT NULL,                       -- [[value per column]]
    row_count    INTEGER NOT NULL,
    title        TEXT
);
CREATE UNIQUE INDEX document_table_position ON document_table (document_id, position);
CREATE INDEX document_table_kb ON document_table (kb_id);
