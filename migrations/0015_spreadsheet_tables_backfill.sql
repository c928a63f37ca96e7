-- Spreadsheets indexed before 0012 have no tables, so a bot's table_query cannot see them.
-- Each indexed spreadsheet without a table is read once more: its chunks' vectors are
-- found again by their text (only new texts are embedded), and its tables are written
-- with its chunks. A sheet that has no header row has no table either and is read once
-- more for nothing; a migration runs once, so that is all it costs.
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
