-- A study's owner kept apart from its rows once retention would change it. The owner is the caller of the study's
-- oldest prediction (records/study-owner.ts), and retention deletes the oldest rows first: once the owner's first rows
-- expired, another caller that had sent an instance under the study's UID between them became the owner while the
-- owner's later rows were still there (records:read-all readers saw its rows, and the FHIR push queued its report as a
-- new version). Before it deletes a study's predictions, and only for a study that keeps some, the retention sweep
-- (store.ts deleteExpired) records here the owner and its first prediction (the owner lookup compares that row with
-- the study's first rows still recorded); the row goes once no prediction of the study is left. Nothing is written with
-- a prediction: a study retention has not touched has no row, and the lookup finds its owner in its rows as before.
CREATE TABLE study_owners (
  study_instance_uid text PRIMARY KEY,
  caller text NOT NULL,
  created_at timestamptz NOT NULL,         -- the owner's first prediction of the study
  id uuid NOT NULL                         -- that prediction's id: ties of created_at go to the lower, as in the rows
);
