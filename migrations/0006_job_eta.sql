-- Embedding progress of a running job in passages, and the time it is expected to take
-- still, so a person watching a big document knows how long it has left (NULL until the
-- job embeds, and again once it ends).
ALTER TABLE ingest_job ADD COLUMN passages_done INTEGER;
ALTER TABLE ingest_job ADD COLUMN passages_total INTEGER;
ALTER TABLE ingest_job ADD COLUMN eta_seconds REAL;
