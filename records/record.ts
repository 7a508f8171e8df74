import { createHash } from 'node:crypto'
import { endianness } from 'node:os'

/** Who asked: 'anonymous' (auth off or a public route), 'api-key:<name>' or 'jwt:<sub>'. Never a key or token. */
export type Caller = string

/** Where a record came from in the service. */
export interface RecordOrigin {
  caller: Caller
  route: string
  requestId?: string
}

/** One image's class activation maps: float32 [classes, height, width], row-major, in the model's class order. */
export interface ActivationMaps {
  values: Float32Array
  dims: [number, number, number]
}

/** Everything recorded about one classified image (see migrations/0001_records.sql for the columns). */
export interface PredictionRecord extends RecordOrigin {
  id: string
  createdAt: Date
  input: { sha256: string, bytes: number, format: string, uploadFile?: string }
  dicom?: {
    studyInstanceUid?: string
    seriesInstanceUid?: string
    sopInstanceUid?: string
    instanceNumber?: number
    slicePosition?: number
  }
  model: { name: string, version: string, sha256: string, threshold: number, temperature: number }
  prediction: string
  probabilities: { Normal: number, Stone: number }
  confidenceBand: string
  /** Milliseconds per stage. */
  timings: Record<string, number>
  cam?: ActivationMaps
  /** The answer exactly as it is sent (a JSON-serialisable object matching the response schema). */
  answer: object
}

/** A refused request, or a refused file inside a batch: no bytes, no file names. */
export interface AuditEvent extends RecordOrigin {
  createdAt: Date
  method: string
  status: number
  code: string
  fileIndex?: number
}

/** A DICOM instance the service refused (C-STORE, STOW-RS): its UIDs and the error code, never its bytes. */
export interface FailedInstanceRecord extends RecordOrigin {
  createdAt: Date
  studyInstanceUid: string
  seriesInstanceUid?: string
  sopInstanceUid?: string
  /** The HTTP status of the error (a DIMSE refusal carries its own status besides). */
  status: number
  code: string
}

export function failedInstanceRow (record: FailedInstanceRecord): Record<string, unknown> {
  return {
    created_at: record.createdAt.toISOString(),
    caller: record.caller,
    route: record.route,
    request_id: record.requestId ?? null,
    study_instance_uid: record.studyInstanceUid,
    series_instance_uid: record.seriesInstanceUid ?? null,
    sop_instance_uid: record.sopInstanceUid ?? null,
    status: record.status,
    code: record.code
  }
}

export function sha256Hex (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

const LITTLE_ENDIAN = endianness() === 'LE'

/** The float32 values as little-endian bytes: a view of the same memory on little-endian machines (all Node targets but s390x). */
export function float32LE (values: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(values.buffer, values.byteOffset, values.byteLength)
  const bytes = Buffer.alloc(values.byteLength)
  values.forEach((value, i) => bytes.writeFloatLE(value, i * 4))
  return bytes
}

/** Little-endian float32 bytes back to values (a copy: the driver's buffer may not be 4-byte aligned). */
export function fromFloat32LE (bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return Float32Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true))
}

/**
 * A record as one row object of the insert's json_to_recordset (insert-statements.ts): snake_case names, the CAM as
 * base64, so that a whole batch of records travels as one JSON parameter of one prepared statement, on PGlite and pg
 * alike.
 */
export function predictionRow (record: PredictionRecord): Record<string, unknown> {
  const { input, dicom, model, cam } = record
  return {
    id: record.id,
    created_at: record.createdAt.toISOString(),
    caller: record.caller,
    route: record.route,
    request_id: record.requestId ?? null,
    input_sha256: input.sha256,
    input_bytes: input.bytes,
    input_format: input.format,
    upload_file: input.uploadFile ?? null,
    study_instance_uid: dicom?.studyInstanceUid ?? null,
    series_instance_uid: dicom?.seriesInstanceUid ?? null,
    sop_instance_uid: dicom?.sopInstanceUid ?? null,
    instance_number: dicom?.instanceNumber ?? null,
    slice_position: dicom?.slicePosition ?? null,
    model_name: model.name,
    model_version: model.version,
    model_sha256: model.sha256,
    threshold: model.threshold,
    temperature: model.temperature,
    prediction: record.prediction,
    probability_normal: record.probabilities.Normal,
    probability_stone: record.probabilities.Stone,
    confidence_band: record.confidenceBand,
    timings: record.timings,
    cam: cam === undefined ? null : float32LE(cam.values).toString('base64'),
    cam_classes: cam?.dims[0] ?? null,
    cam_height: cam?.dims[1] ?? null,
    cam_width: cam?.dims[2] ?? null,
    answer: record.answer,
    slices: slicesOf(record.answer)
  }
}

/**
 * The slices a prediction brings to its study (the study read's bound counts them): a multi-frame object's frames,
 * else 1. An answer has `frames` only for two or more (inference/preprocess.ts), so 1 means a single image.
 */
function slicesOf (answer: object): number {
  const { frames } = answer as { frames?: unknown }
  return Array.isArray(frames) ? frames.length : 1
}

export function auditRow (event: AuditEvent): Record<string, unknown> {
  return {
    created_at: event.createdAt.toISOString(),
    caller: event.caller,
    method: event.method,
    route: event.route,
    status: event.status,
    code: event.code,
    request_id: event.requestId ?? null,
    file_index: event.fileIndex ?? null
  }
}

/** A `predictions` row as the drivers return it (created_at as the microsecond UTC text the store selects). */
export interface PredictionRow {
  id: string
  created_at: string
  caller: string
  route: string
  request_id: string | null
  input_sha256: string
  input_bytes: number
  input_format: string
  upload_file: string | null
  study_instance_uid: string | null
  series_instance_uid: string | null
  sop_instance_uid: string | null
  instance_number: number | null
  slice_position: number | null
  model_name: string
  model_version: string
  model_sha256: string
  threshold: number
  temperature: number
  prediction: string
  probability_normal: number
  probability_stone: number
  confidence_band: string
  timings: Record<string, number> | string
  cam: Uint8Array | null
  cam_classes: number | null
  cam_height: number | null
  cam_width: number | null
  answer: object | string
  /** Since migration 0006; null on rows written before. */
  slices: number | null
}

export interface AuditRow {
  created_at: string
  caller: string
  method: string
  route: string
  status: number
  code: string
  request_id: string | null
  file_index: number | null
}

/** json columns arrive parsed from pg and PGlite alike; a string is parsed here in case a driver does not. */
const json = <T>(value: T | string): T => typeof value === 'string' ? JSON.parse(value) : value
/** Only the keys whose value is set (SQL NULL: absent), so records read back compare equal to the records written. */
function defined<T extends object> (value: T): { [K in keyof T]?: Exclude<T[K], null> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined)) as { [K in keyof T]?: Exclude<T[K], null> }
}

export function fromPredictionRow (row: PredictionRow): PredictionRecord {
  const dicom = defined({
    studyInstanceUid: row.study_instance_uid,
    seriesInstanceUid: row.series_instance_uid,
    sopInstanceUid: row.sop_instance_uid,
    instanceNumber: row.instance_number,
    slicePosition: row.slice_position
  })
  return {
    id: row.id,
    createdAt: new Date(row.created_at),
    caller: row.caller,
    route: row.route,
    ...defined({ requestId: row.request_id }),
    input: { sha256: row.input_sha256, bytes: row.input_bytes, format: row.input_format, ...defined({ uploadFile: row.upload_file }) },
    ...(Object.keys(dicom).length === 0 ? {} : { dicom }),
    model: { name: row.model_name, version: row.model_version, sha256: row.model_sha256, threshold: row.threshold, temperature: row.temperature },
    prediction: row.prediction,
    probabilities: { Normal: row.probability_normal, Stone: row.probability_stone },
    confidenceBand: row.confidence_band,
    timings: json(row.timings),
    ...(row.cam === null || row.cam_classes === null || row.cam_height === null || row.cam_width === null
      ? {}
      : { cam: { values: fromFloat32LE(row.cam), dims: [row.cam_classes, row.cam_height, row.cam_width] } }),
    answer: json(row.answer)
  }
}

export function fromAuditRow (row: AuditRow): AuditEvent {
  return {
    createdAt: new Date(row.created_at),
    caller: row.caller,
    route: row.route,
    ...defined({ requestId: row.request_id, fileIndex: row.file_index }),
    method: row.method,
    status: row.status,
    code: row.code
  }
}
