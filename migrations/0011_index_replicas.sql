-- The highest chunk seq whose tombstones a rebuild (`zhiku reindex`) has removed from this
-- KB. Indexes whose mark is below it may lack a removal they can no longer read, so they
-- are built afresh instead of caught up (several nodes on PostgreSQL: docs/postgres.md).
ALTER TABLE kb ADD COLUMN reindexed_through_seq INTEGER NOT NULL DEFAULT 0;
