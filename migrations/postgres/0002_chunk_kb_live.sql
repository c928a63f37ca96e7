-- Mirrors migrations/0002_chunk_kb_live.sql.
CREATE INDEX chunk_kb_deleted ON chunk (kb_id, is_deleted);
