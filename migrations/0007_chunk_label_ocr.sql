-- Where a chunk lies when a page number cannot say it, and whether OCR read it, so both
-- reach the user (chunk lists, hit testing, and the citations of answers); and the
-- languages OCR reads a knowledge base's scans in.
-- label: a table's sheet and rows (`销售明细 第3–8行`, `第2–41行` for a CSV); NULL for
-- other chunks, and for chunks stored before this column (their documents re-ingested
-- get one).
ALTER TABLE chunk ADD COLUMN label TEXT;
-- is_ocr: 1 when the text was recognised from a scan or photo and may hold recognition
-- errors; the UI marks such chunks.
ALTER TABLE chunk ADD COLUMN is_ocr INTEGER NOT NULL DEFAULT 0;
-- The tesseract languages a knowledge base's scans and photos are read in (`chi_tra+eng`),
-- checked against the installed ones when set; NULL reads them in the default
-- (`chi_sim+eng`, ingest's OcrSettings), as every knowledge base did before.
ALTER TABLE kb ADD COLUMN ocr_languages TEXT;
