import type { Caller } from './record.js'

/**
 * SQL for the caller that owns a study: the one whose prediction of it is the oldest (created_at, id), whatever came
 * after; null while none of its instances was classified. `study` is the SQL expression of its StudyInstanceUID.
 * `owners` is the SQL expression of the callers that may own a study (a text[], callersParam; STUDY_OWNERS): with
 * it, the oldest prediction of a listed caller, and null while no listed caller had one classified; NULL: any caller.
 * Any caller with the predict scope can send instances under any StudyInstanceUID, so what every records:read-all reader
 * of GET /studies sees and when the FHIR push sends its report are both judged by the owner's rows alone
 * (store.ts readStudy, push-queue.ts). Any caller: the first row of the study's walk in arrival order
 * (predictions_study_arrival, migration 0005). Listed callers: each one's first row, one seek apiece on
 * predictions_study_caller (migration 0007), the oldest of those; as a filter on the arrival walk, a lookup read every
 * row unlisted callers had sent ahead of the first listed one. CASE runs only the branch taken.
 */
export function studyOwnerSql (study: string, owners: string): string {
  const first = (caller: string): string => 'SELECT earliest.caller, earliest.created_at, earliest.id FROM predictions AS earliest ' +
    `WHERE earliest.study_instance_uid = ${study} AND ${caller} ORDER BY earliest.created_at, earliest.id LIMIT 1`
  return `(CASE WHEN ${owners} IS NULL THEN (SELECT anyone.caller FROM (${first('true')}) AS anyone) ` +
    `ELSE (SELECT listed.caller FROM unnest(${owners}) AS owner (caller) CROSS JOIN LATERAL (${first('earliest.caller = owner.caller')}) AS listed ` +
    'ORDER BY listed.created_at, listed.id LIMIT 1) END)'
}

/**
 * Callers as one SQL parameter of type text[], in PostgreSQL's text form of an array (each element quoted, so an AE
 * title's spaces or a JWT subject's braces stay whole); null for none. Both drivers send a string as it is, where the
 * embedded one refuses a JavaScript array.
 */
export function callersParam (callers: readonly Caller[] | undefined): string | null {
  if (callers === undefined) return null
  return `{${callers.map((caller) => `"${caller.replace(/["\\]/g, '\\$&')}"`).join(',')}}`
}
