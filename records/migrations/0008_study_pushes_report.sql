-- The SHA-256 of the last DiagnosticReport the FHIR server accepted for the study, without its `issued` time. A study
-- is queued again whenever its owner sends an instance after its push, and a PACS sending the same study again (a
-- resend, a second routing rule) makes a new version whose report is the same, word for word: it was POSTed as a
-- second, identical DiagnosticReport. With this hash a version whose report is unchanged is marked pushed, not sent.
ALTER TABLE study_pushes ADD COLUMN report_sha256 text;
