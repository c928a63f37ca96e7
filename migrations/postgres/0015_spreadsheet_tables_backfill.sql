-- Mirrors migrations/0015_spreadsheet_tables_backfill.sql.
INSERT INTO ingest_job (document_id, kb_id, bytes)
SELECT d.document_id, d.kb_id, d.bytes
FROM document d
WHERE d.kind IN ('csv', 'xlsx', 'xls', 'ods')
  AND d.status = 'indexed'
  AND NOT EXISTS (SELECT 1 FROM document_table t WHERE t.document_id = d.document_id)
ORDER BY d.created_at;

UPDATE document SET status = 'queued', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE kind IN ('csv', 'xlsx', 'xls', 'ods')
  AND status = 'indexed'
  AND NOT EXISTS (SELECT 1 FROM document_table t WHERE t.document_id = document.document_id);
