/**
 * SQL for the caller that owns a study: the one whose prediction of it is the oldest (created_at, id), whatever came
 * after; null while none of its instances was classified. `study` is the SQL expression of its StudyInstanceUID. Any
 * caller with the predict scope can send instances under any StudyInstanceUID, so what every records:read-all reader
 * of GET /studies sees and when the FHIR push sends its report are both judged by the owner's rows alone
 * (store.ts readStudy, push-queue.ts).
 */
export function studyOwnerSql (study: string): string {
  return `(SELECT earliest.caller FROM predictions AS earliest WHERE earliest.study_instance_uid = ${study} ` +
    'ORDER BY earliest.created_at, earliest.id LIMIT 1)'
}
