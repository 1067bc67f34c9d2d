-- Keep vectors inline in the row (a 512-dimension vector is just over the TOAST threshold):
-- a scan then reads one heap page per row instead of chasing TOAST chunks. Applies to rows
-- written from now on.
ALTER TABLE kb_chunks ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE mem_facts ALTER COLUMN embedding SET STORAGE MAIN;
