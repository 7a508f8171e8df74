-- A study's rows in arrival order: its owner is its oldest prediction (records/study-owner.ts), looked up by every
-- records:read-all read of the study and, per study received lately, by every FHIR push sweep; readStudy reads its
-- newest rows. With only predictions_series, each lookup read every row of the study and sorted them. No query
-- filters on the series: the new index takes predictions_series' place, so an insert maintains as many indexes as before.
CREATE INDEX predictions_study_arrival ON predictions (study_instance_uid, created_at, id) WHERE study_instance_uid IS NOT NULL;
DROP INDEX predictions_series;
