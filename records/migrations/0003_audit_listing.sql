-- GET /audit-events pages newest first by (created_at, id), for everyone or for one caller (records/page.ts): the
-- same two indexes as predictions, so a page reads from where the cursor is instead of scanning from the newest row.
-- The audit trail is the table unauthenticated traffic grows (every 401 is a row).
CREATE INDEX audit_events_newest ON audit_events (created_at DESC, id DESC);
CREATE INDEX audit_events_caller_newest ON audit_events (caller, created_at DESC, id DESC);
DROP INDEX audit_events_created;
