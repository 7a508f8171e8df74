-- A study's callers' first predictions kept apart from its rows once retention deletes them. The owner is the caller
-- of the study's oldest prediction, of a STUDY_OWNERS caller when that is set (records/study-owner.ts), and retention
-- deletes the oldest rows first: once the owner's first rows expired, another caller that had sent an instance under
-- the study's UID between them became the owner while the owner's later rows were still there (records:read-all
-- readers saw its rows, and the FHIR push queued its report as a new version). Before it deletes a caller's
-- predictions of a study that keeps some, the retention sweep (store.ts deleteExpired) records here that caller's first
-- one, every caller's (the list may change between runs); the owner lookup compares these rows with the callers' first
-- rows still recorded. A study's rows go with its last prediction. Nothing is written with a prediction: a study
-- retention has not touched has no row, and the lookup finds its owner in its rows as before.
CREATE TABLE study_owners (
  study_instance_uid text NOT NULL,
  caller text NOT NULL,
  created_at timestamptz NOT NULL,         -- the caller's first prediction of the study
  id uuid NOT NULL,                        -- that prediction's id: ties of created_at go to the lower, as in the rows
  PRIMARY KEY (study_instance_uid, caller) -- a listed caller's first: one seek each
);
-- Without STUDY_OWNERS, the oldest of them: the first entry of the study.
CREATE INDEX study_owners_first ON study_owners (study_instance_uid, created_at, id);
