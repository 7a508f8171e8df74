-- A prediction row is about 3 kB (the answer, and 1.6 kB of activation maps): above PostgreSQL's default TOAST target
-- of about 2 kB, so every insert compressed the answer and moved the CAM out of line into the TOAST table, a second
-- heap insert and a second index insert per record. Rows up to a page are now kept inline, as written: no compression,
-- no TOAST work on the write path (and none on reads). Applies to rows written from now on.
ALTER TABLE predictions SET (toast_tuple_target = 8160);
