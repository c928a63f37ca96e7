-- Counting a KB's chunks (KB list and detail) reads only this index instead of every
-- chunk row with its text.
CREATE INDEX chunk_kb_deleted ON chunk (kb_id, is_deleted);
