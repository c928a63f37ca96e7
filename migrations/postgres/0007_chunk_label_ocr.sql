-- Mirrors migrations/0007_chunk_label_ocr.sql.
ALTER TABLE chunk ADD COLUMN label TEXT;
ALTER TABLE chunk ADD COLUMN is_ocr BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE kb ADD COLUMN ocr_languages TEXT;
