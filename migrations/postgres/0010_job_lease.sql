-- Mirrors migrations/0010_job_lease.sql: the node holding a processing job, and until when.
ALTER TABLE ingest_job ADD COLUMN lease_owner TEXT;
ALTER TABLE ingest_job ADD COLUMN lease_until TEXT;
