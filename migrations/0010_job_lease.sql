-- Job leases (issue 22: several zhiku nodes on one database). A processing job is held by
-- one node: lease_owner is that node's id (kept in its data directory, the same across
-- its restarts), lease_until the time (UTC, the database's clock, in the same ISO-8601
-- form as the other timestamps, so text order is time order) until which the claim holds
-- unless the node's heartbeat renews it. A job whose lease ran out belongs to a node that
-- stopped, and any node puts it back in the queue. Both NULL on jobs never claimed, and on
-- jobs claimed before this migration (which count as run out).
ALTER TABLE ingest_job ADD COLUMN lease_owner TEXT;
ALTER TABLE ingest_job ADD COLUMN lease_until TEXT;
