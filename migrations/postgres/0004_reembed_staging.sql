-- Mirrors migrations/0004_reembed_staging.sql.
CREATE TABLE chunk_vector_staging (
    chunk_id   BIGINT PRIMARY KEY,
    kb_id      TEXT NOT NULL,
    model      TEXT NOT NULL,
    embedding  BYTEA NOT NULL
);
CREATE INDEX chunk_vector_staging_kb_model ON chunk_vector_staging (kb_id, model);
