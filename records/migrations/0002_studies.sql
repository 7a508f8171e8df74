-- Study results (GET /studies/{uid}) and the FHIR push of final studies.

-- One row per DICOM instance the service refused (C-STORE, STOW-RS): a series counts what it was sent, not only what
-- it could classify. UIDs and the error code only: no bytes, no patient data.
CREATE TABLE failed_instances (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at timestamptz NOT NULL,
  caller text NOT NULL,                    -- 'dicom:<calling AE title>', 'anonymous', 'api-key:<name>', 'jwt:<sub>'
  route text NOT NULL,                     -- 'DIMSE C-STORE', '/studies'
  request_id text,
  study_instance_uid text NOT NULL,
  series_instance_uid text,
  sop_instance_uid text,
  status integer NOT NULL,                 -- the HTTP status of the error, whatever way the refusal was sent
  code text NOT NULL
);
CREATE INDEX failed_instances_study ON failed_instances (study_instance_uid, series_instance_uid);
CREATE INDEX failed_instances_created ON failed_instances (created_at);

-- One row per study whose DiagnosticReport was POSTed to FHIR_SERVER_URL (or is being tried): which version of the
-- study (its newest instance time) went out, so a study that grows after a push is pushed again, and only once
-- across replicas (rows are claimed with FOR UPDATE SKIP LOCKED).
CREATE TABLE study_pushes (
  study_instance_uid text PRIMARY KEY,
  version timestamptz NOT NULL,            -- newest instance time of the study when this push was decided
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  pushed_at timestamptz,                   -- null until the FHIR server accepted it
  gave_up boolean NOT NULL DEFAULT false,  -- FHIR_PUSH_MAX_ATTEMPTS reached
  last_error text,
  location text                            -- the Location the FHIR server answered
);
CREATE INDEX study_pushes_due ON study_pushes (next_attempt_at) WHERE pushed_at IS NULL AND NOT gave_up;
