import type { Caller } from './record.js'

/**
 * SQL for the caller that owns a study: the one whose prediction of it is the oldest (created_at, id), whatever came
 * after; null while none of its instances was classified. `study` is the SQL expression of its StudyInstanceUID.
 * `owners` is the SQL expression of the callers that may own a study (a text[], callersParam; STUDY_OWNERS): with
 * it, the oldest prediction of a listed caller, and null while no listed caller had one classified; NULL: any caller.
 * Any caller with the predict scope can send instances under any StudyInstanceUID, so what every records:read-all reader
 * of GET /studies sees and when the FHIR push sends its report are both judged by the owner's rows alone
 * (store.ts readStudy, push-queue.ts). The caller test is a filter on the walk of predictions_study_arrival (migration
 * 0005) in arrival order, which stops at the first listed row.
 */
export function studyOwnerSql (study: string, owners: string): string {
  return `(SELECT earliest.caller FROM predictions AS earliest WHERE earliest.study_instance_uid = ${study} ` +
    `AND (${owners} IS NULL OR earliest.caller = ANY(${owners})) ORDER BY earliest.created_at, earliest.id LIMIT 1)`
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
