-- Mirrors migrations/0006_job_eta.sql.
ALTER TABLE ingest_job ADD COLUMN passages_done BIGINT;
ALTER TABLE ingest_job ADD COLUMN passages_total BIGINT;
ALTER TABLE ingest_job ADD COLUMN eta_seconds DOUBLE PRECISION;
