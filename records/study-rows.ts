// The SQL of a study read (RecordStore.readStudy) and the rows it returns: a study's classified instances and refusals.
import type { FrameAnswer } from '../inference/series-conclusion.js'
import { CREATED_AT_US } from './page.js'

/** One classified instance of a study, as the study results read it. */
export interface StudyInstanceRow {
  id: string
  created_at: string
  series_instance_uid: string | null
  sop_instance_uid: string | null
  instance_number: number | null
  slice_position: number | null
  probability_stone: number
  prediction: string
  model_name: string
  model_version: string
  threshold: number
  /** A multi-frame object's per-frame answers (its answer's `frames`), each frame a slice; null for a single image. */
  frames?: FrameAnswer[] | null
}

/** One refused instance of a study. */
export interface StudyFailureRow {
  created_at: string
  series_instance_uid: string | null
  sop_instance_uid: string | null
  code: string
}

export interface StudyRows { instances: StudyInstanceRow[], failures: StudyFailureRow[] }

/**
 * The most slices, and so the most instances, one study read returns (a CT study has a few series of up to a few
 * thousand slices). Slices, not rows: a multi-frame object brings up to DICOM_MAX_FRAMES of them, and 20,000 objects
 * of 300 frames would have made one answer of 6 million slices (measured at 1,000 such objects: 53 MB of JSON, the
 * event loop held about a second, +330 MB).
 */
export const MAX_STUDY_ROWS = 20_000

/** What a study read takes of each prediction row (not its answer, maps or input facts). */
const STUDY_INSTANCE_COLUMNS = 'id, series_instance_uid, sop_instance_uid, instance_number, slice_position, probability_stone, prediction, model_name, model_version, threshold'
/**
 * A row's slices as the study read's bound counts them, stored since migration 0006 (a row written before is counted
 * from its answer); a multi-frame object's frames, taken only from the answers of the rows kept (the others pass
 * through the window unparsed). A single image has no frames.
 */
const STUDY_SLICES = "coalesce(slices, json_array_length(answer->'frames'), 1)"
const STUDY_FRAMES = "CASE WHEN slices = 1 THEN NULL ELSE answer->'frames' END AS frames"
/**
 * A study's ($1) newest rows of one caller ($2) whose slices (a multi-frame object's frames, else one) add up to at
 * most $3, MAX_STUDY_ROWS: a backward seek on predictions_study_caller (migration 0007), past no other caller's rows.
 * The outer order names newest's column: a bare created_at is the selected CREATED_AT_US text, sorted again.
 */
export const STUDY_INSTANCES_SQL = `SELECT ${STUDY_INSTANCE_COLUMNS}, ${STUDY_FRAMES}, ${CREATED_AT_US} FROM (SELECT ${STUDY_INSTANCE_COLUMNS}, created_at, slices, answer, ` +
  `sum(${STUDY_SLICES}) OVER (ORDER BY created_at DESC, id DESC) AS slices_through ` +
  'FROM predictions WHERE study_instance_uid = $1 AND caller = $2 ORDER BY created_at DESC, id DESC LIMIT $3) AS newest ' +
  'WHERE slices_through <= $3 ORDER BY newest.created_at DESC, newest.id DESC'

/**
 * A study's ($1) newest refusals, at most $2: of one caller ($3), of the callers in $3 (a text[]: STUDY_OWNERS while
 * none owns the study), each a seek of its own as in study-owner.ts, or of every caller. Three statements: with one,
 * `$3 IS NULL OR caller = ANY($3)`, a named statement's generic plan had the caller in no index condition and walked
 * failed_instances_created through every study's refusals. One caller's is a backward seek on
 * failed_instances_study_caller (migration 0009). The order names refused's column, as in page.ts.
 */
const STUDY_REFUSED = 'SELECT series_instance_uid, sop_instance_uid, code, created_at, id FROM failed_instances WHERE study_instance_uid = $1'
const newestRefused = (rows: string): string => `SELECT series_instance_uid, sop_instance_uid, code, ${CREATED_AT_US} FROM ${rows} ` +
  'ORDER BY refused.created_at DESC, refused.id DESC LIMIT $2'
export const STUDY_FAILURES_SQL = {
  caller: newestRefused(`(${STUDY_REFUSED} AND caller = $3) AS refused`),
  listed: newestRefused(`unnest($3::text[]) AS listed (caller) CROSS JOIN LATERAL (${STUDY_REFUSED} AND failed_instances.caller = listed.caller ` +
    'ORDER BY created_at DESC, id DESC LIMIT $2) AS refused'),
  any: newestRefused(`(${STUDY_REFUSED}) AS refused`)
}
