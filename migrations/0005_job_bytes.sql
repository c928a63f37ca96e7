-- The size of the document a job ingests, so a worker can take several small documents
-- in one batch (one embedding run, one index commit). NULL on jobs queued before: those
-- are taken one at a time, as they were.
ALTER TABLE ingest_job ADD COLUMN bytes INTEGER;
