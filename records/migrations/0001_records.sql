-- Prediction records and audit events. Applied once per database by records/migrate.ts, inside a transaction,
-- under the migration advisory lock. Never edit an applied migration: add the next numbered file instead.

-- One row per classified image: what was answered (answer, verbatim), by which model, for whom, from which
-- input, and the activation maps the model computed, so the explanation can be drawn later without re-running it.
CREATE TABLE predictions (
  id uuid PRIMARY KEY,                     -- the response id, also the stored upload's name
  created_at timestamptz NOT NULL,
  caller text NOT NULL,                    -- 'anonymous', 'api-key:<name>' or 'jwt:<sub>'; never a secret
  route text NOT NULL,                     -- '/predict', '/predict/batch', ...
  request_id text,                         -- x-request-id: a batch's records share it
  input_sha256 text NOT NULL,
  input_bytes integer NOT NULL,
  input_format text NOT NULL,              -- 'jpeg', 'png' or 'dicom', detected from the bytes
  upload_file text,                        -- the kept upload's file name in UPLOAD_DIR; null when uploads are not kept
  study_instance_uid text,
  series_instance_uid text,
  sop_instance_uid text,
  instance_number integer,
  slice_position double precision,         -- mm along the slice normal (records/record.ts)
  model_name text NOT NULL,
  model_version text NOT NULL,
  model_sha256 text NOT NULL,
  threshold double precision NOT NULL,
  temperature double precision NOT NULL,
  prediction text NOT NULL,
  probability_normal double precision NOT NULL,
  probability_stone double precision NOT NULL,
  confidence_band text NOT NULL,
  timings json NOT NULL,                   -- stage timings in milliseconds
  cam bytea,                               -- float32 little-endian, [cam_classes, cam_height, cam_width], class order of the model
  cam_classes integer,
  cam_height integer,
  cam_width integer,
  answer json NOT NULL                     -- the /predict answer exactly as it was sent
);
-- float32 bytes do not compress: keep PostgreSQL from trying on every insert (out of line when the row is large).
ALTER TABLE predictions ALTER COLUMN cam SET STORAGE EXTERNAL;
CREATE INDEX predictions_newest ON predictions (created_at DESC, id DESC);
CREATE INDEX predictions_caller_newest ON predictions (caller, created_at DESC, id DESC);
CREATE INDEX predictions_series ON predictions (study_instance_uid, series_instance_uid) WHERE study_instance_uid IS NOT NULL;

-- One row per refused request (and per refused file of a batch): who, where, what code. No bytes, no file names.
CREATE TABLE audit_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at timestamptz NOT NULL,
  caller text NOT NULL,
  method text NOT NULL,
  route text NOT NULL,                     -- the route pattern, '(no route)' for unknown paths; never the raw URL
  status integer NOT NULL,
  code text NOT NULL,
  request_id text,
  file_index integer                       -- position of the refused file in a batch request
);
CREATE INDEX audit_events_created ON audit_events (created_at);
