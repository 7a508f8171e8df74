-- How many slices a prediction brings to its study: a multi-frame object's frames (its answer's `frames`), else 1.
-- readStudy (records/store.ts) bounds a study read to MAX_STUDY_ROWS slices by a running sum over the newest rows; it
-- counted them from each row's answer, so every read parsed up to 20,000 answers, most past the bound (1,000 objects
-- of 300 frames: 0.4 to 0.6 s of the database's CPU per read, bench/study-read.ts). Nullable without a default, so
-- adding it rewrites nothing: rows written before this migration keep NULL and are counted from their answer.
ALTER TABLE predictions ADD COLUMN slices integer;
