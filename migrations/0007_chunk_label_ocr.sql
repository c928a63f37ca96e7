-- Where a chunk lies when a page number cannot say it, and whether OCR read it, so both
-- reach the user (chunk lists, hit testing, and the citations of answers).
-- label: a table's sheet and rows (`销售明细 第3–8行`, `第2–41行` for a CSV); NULL for
-- other chunks, and for chunks stored before this column (their documents re-ingested
-- get one).
ALTER TABLE chunk ADD COLUMN label TEXT;
-- is_ocr: 1 when the text was recognised from a scan or photo and may hold recognition
-- errors; the UI marks such chunks.
ALTER TABLE chunk ADD COLUMN is_ocr INTEGER NOT NULL DEFAULT 0;
