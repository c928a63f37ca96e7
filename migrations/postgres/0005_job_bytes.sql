-- Mirrors migrations/0005_job_bytes.sql.
ALTER TABLE ingest_job ADD COLUMN bytes BIGINT;
