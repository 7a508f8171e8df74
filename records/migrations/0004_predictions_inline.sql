-- A prediction row is about 3 kB (the answer, the timings, 1.5 kB of activation maps), above PostgreSQL's default
-- 2 kB toast threshold: every insert tried to compress the answer and then moved the maps out of line, into the
-- TOAST table and its index, a second row write per record. Rows up to a page's worth stay whole and uncompressed.
ALTER TABLE predictions SET (toast_tuple_target = 8160);
