-- `zhiku reindex --re-embed` writes the new vectors here first and swaps them into `chunk`
-- in one transaction at the end. A kill part-way leaves every chunk of the KB on its old
-- model (never a mix of two models), and the next run resumes from what was staged.
CREATE TABLE chunk_vector_staging (
    chunk_id   INTEGER PRIMARY KEY,
    kb_id      TEXT NOT NULL,
    model      TEXT NOT NULL,
    embedding  BLOB NOT NULL
);
CREATE INDEX chunk_vector_staging_kb_model ON chunk_vector_staging (kb_id, model);
