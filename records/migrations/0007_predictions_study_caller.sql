-- A study's rows of one caller in arrival order. With STUDY_OWNERS, a study's owner is the listed caller with the
-- oldest row (records/study-owner.ts), and the read-all view reads that caller's newest rows (store.ts readStudy):
-- on predictions_study_arrival both were a filter on the walk of the study's rows, so every row another caller sent
-- under the study's UID was read on every records:read-all study read and, per study received lately, every FHIR
-- push sweep (ahead of a PACS's first row, or after its last). Here each is a seek per caller. Partial as
-- predictions_study_arrival is, which the lookup without STUDY_OWNERS and GET /predictions by study still walk in
-- arrival order: a record without a study (an image sent to /predict) maintains neither.
CREATE INDEX predictions_study_caller ON predictions (study_instance_uid, caller, created_at, id) WHERE study_instance_uid IS NOT NULL;
