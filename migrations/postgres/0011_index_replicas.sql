-- Mirrors migrations/0011_index_replicas.sql: the highest chunk seq whose tombstones a
-- rebuild has removed from this KB.
ALTER TABLE kb ADD COLUMN reindexed_through_seq BIGINT NOT NULL DEFAULT 0;

-- Every node's indexes follow the chunk log (docs/postgres.md, "Several nodes on one
-- database"). Any change to a chunk or a KB notifies the channel `zhiku_index` with the
-- KB's id, from inside the writing transaction, so the notification is delivered when, and
-- only if, that transaction commits; PostgreSQL folds the identical notifications of one
-- transaction into one. A trigger rather than a NOTIFY beside each write: no write path
-- can forget it. Listening nodes catch up that KB (src/services/replicas.rs); a poll covers
-- a notification lost while a node was disconnected.
CREATE FUNCTION zhiku_notify_index() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('zhiku_index', OLD.kb_id);
    ELSE
        PERFORM pg_notify('zhiku_index', NEW.kb_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chunk_notify_index AFTER INSERT OR UPDATE OR DELETE ON chunk
    FOR EACH ROW EXECUTE FUNCTION zhiku_notify_index();
CREATE TRIGGER kb_notify_index AFTER INSERT OR UPDATE OR DELETE ON kb
    FOR EACH ROW EXECUTE FUNCTION zhiku_notify_index();
