import type { Caller } from './record.js'

/**
 * The owner's first prediction of a study (its caller, created_at, id), one row or none: the oldest of the first
 * predictions of the study's callers, each one's first row still recorded or the one the retention sweep kept before
 * deleting it (study_owners, migration 0010, keepStudyOwnersSql). `study` is the SQL expression of its
 * StudyInstanceUID. `owners` is the SQL expression of the callers that may own a study (a text[], callersParam;
 * STUDY_OWNERS): with it, listed callers' alone; NULL: any caller. Any caller: the first row of the study's walk in
 * arrival order (predictions_study_arrival, migration 0005) and of its kept rows (study_owners_first). Listed callers:
 * each one's first row, one seek apiece on predictions_study_caller (migration 0007), and its kept row, one seek of
 * study_owners' key; as a filter on the arrival walk, a lookup read every row unlisted callers had sent ahead of the
 * first listed one. The branch not taken is a one-time filter on `owners`: its scans do not run. What is sorted is
 * these few first rows, never the study's.
 */
function ownerRowSql (study: string, owners: string, columns: string): string {
  const first = (table: string, where: string): string => `SELECT earliest.caller, earliest.created_at, earliest.id FROM ${table} AS earliest ` +
    `WHERE earliest.study_instance_uid = ${study} AND ${where} ORDER BY earliest.created_at, earliest.id LIMIT 1`
  return `SELECT ${columns} FROM ((${first('study_owners', `${owners} IS NULL`)}) UNION ALL (${first('predictions', `${owners} IS NULL`)}) ` +
    `UNION ALL SELECT listed.caller, listed.created_at, listed.id FROM unnest(${owners}) AS owner (caller) CROSS JOIN LATERAL (` +
    `SELECT kept.caller, kept.created_at, kept.id FROM study_owners AS kept WHERE kept.study_instance_uid = ${study} AND kept.caller = owner.caller ` +
    `UNION ALL (${first('predictions', 'earliest.caller = owner.caller')})) AS listed) AS oldest ORDER BY oldest.created_at, oldest.id LIMIT 1`
}

/**
 * SQL for the caller that owns a study: the one whose prediction of it is the oldest (created_at, id), whatever came
 * after; null while none of its instances was classified. With STUDY_OWNERS (`owners`, ownerRowSql), the listed
 * caller with the oldest. Any caller with the predict scope can send instances under any StudyInstanceUID, so what
 * every records:read-all reader of GET /studies sees and when the FHIR push sends its report are both judged by the
 * owner's rows alone (store.ts readStudy, push-queue.ts). Retention deletes the oldest rows first: read from the rows
 * alone, once the owner's first ones expired, a caller that had sent under the study's UID between them would own it
 * while the owner's later rows are still there. So the sweep keeps each caller's first row before it deletes any of its
 * rows of a study (keepStudyOwnersSql), and those count as if still recorded.
 */
export function studyOwnerSql (study: string, owners: string): string {
  return `(${ownerRowSql(study, owners, 'oldest.caller')})`
}

/**
 * The retention sweep's statement that keeps, for each caller of the predictions it is about to delete (`doomed`, the
 * name of a CTE of their id, study_instance_uid and caller), that caller's first prediction of their study, in the
 * same statement as the delete, so read from the rows as they were. Only for a study that keeps a prediction: one with
 * none left has no owner to keep. Every caller's, listed in STUDY_OWNERS or not: the owner is then found under any
 * list, a list changed between runs included, as if retention had deleted nothing (one owner kept per study would
 * be passed over once unlisted, for the listed caller with the oldest row still recorded, although another listed
 * caller sent first). A caller kept already keeps its row: that one is its first (rows go oldest
 * first), and `DO NOTHING` takes no lock on it. In the order of the key, so that two replicas' sweeps write in one
 * order (an insert of the same key waits for the other's commit, then does nothing).
 */
export function keepStudyOwnersSql (doomed: string): string {
  return 'INSERT INTO study_owners (study_instance_uid, caller, created_at, id) ' +
    'SELECT senders.study_instance_uid, senders.caller, earliest.created_at, earliest.id ' +
    `FROM (SELECT DISTINCT study_instance_uid, caller FROM ${doomed} WHERE study_instance_uid IS NOT NULL) AS senders ` +
    'CROSS JOIN LATERAL (SELECT theirs.created_at, theirs.id FROM predictions AS theirs WHERE theirs.study_instance_uid = senders.study_instance_uid ' +
    'AND theirs.caller = senders.caller ORDER BY theirs.created_at, theirs.id LIMIT 1) AS earliest ' +
    `WHERE ${keepsRows(doomed, 'senders.study_instance_uid')} ORDER BY senders.study_instance_uid, senders.caller ` +
    'ON CONFLICT (study_instance_uid, caller) DO NOTHING'
}

/** Whether the study `study` keeps a prediction once those of `doomed` (a CTE of their id) are gone, read from the rows as they were. */
function keepsRows (doomed: string, study: string): string {
  return `EXISTS (SELECT 1 FROM predictions AS remaining WHERE remaining.study_instance_uid = ${study} AND remaining.id NOT IN (SELECT id FROM ${doomed}))`
}

/**
 * Forgets what was kept of the studies whose predictions a statement deletes (`doomed`, a CTE of their id and
 * study_instance_uid: the sweep's, or a withdrawn record's, store.ts deletePrediction) and that keep none, in that
 * statement. Forgotten later, a kept first row would take over the study sent again in between (a prediction under its
 * UID arriving before a separate forgetting statement, or after a pass failed between the two): the new rows were the
 * old owner's as long as they lived, read-all readers saw none of them, and nothing was pushed. The studies as an
 * array: a seek of the study in study_owners each, where `IN` is planned as a hash join on a scan of all of them.
 */
export function forgetStudyOwnersSql (doomed: string): string {
  return 'DELETE FROM study_owners AS kept WHERE kept.study_instance_uid = ANY (ARRAY(SELECT study_instance_uid FROM ' +
    `${doomed} WHERE study_instance_uid IS NOT NULL)) AND NOT ${keepsRows(doomed, 'kept.study_instance_uid')}`
}

/**
 * Forgets, `$1` at most, the kept first rows of studies with no prediction left that forgetStudyOwnersSql could not: two
 * statements that delete a study's last rows between them at the same moment each read the other's as still there
 * (two replicas' sweeps each taking part of them, or a withdrawal beside a sweep). Still needed, then, but for those
 * races alone: each pass runs it right after its predictions, so such a kept row is forgotten by the same pass when a
 * sweep committed last, else by the next; a study sent again before that is taken over by it, as above.
 */
export const FORGET_STUDY_OWNERS_SQL = 'DELETE FROM study_owners WHERE (study_instance_uid, caller) IN (SELECT kept.study_instance_uid, kept.caller FROM study_owners AS kept ' +
  'WHERE NOT EXISTS (SELECT 1 FROM predictions WHERE predictions.study_instance_uid = kept.study_instance_uid) LIMIT $1 FOR UPDATE SKIP LOCKED)'

/**
 * Callers as one SQL parameter of type text[], in PostgreSQL's text form of an array (each element quoted, so an AE
 * title's spaces or a JWT subject's braces stay whole); null for none. Both drivers send a string as it is, where the
 * embedded one refuses a JavaScript array.
 */
export function callersParam (callers: readonly Caller[] | undefined): string | null {
  if (callers === undefined) return null
  return `{${callers.map((caller) => `"${caller.replace(/["\\]/g, '\\$&')}"`).join(',')}}`
}
