import { RetryLaterError, ServiceError } from '../inference/errors.js'

/** The database could not be reached or refused a statement; `reason` is ours, safe to show (no URL, no secret). */
export class RecordStoreError extends Error {
  constructor (readonly reason: string, options?: { cause?: unknown }) {
    super(`records store: ${reason}`, options)
    this.name = 'RecordStoreError'
  }
}

/** Our words for the ways a database statement fails; the driver's own message stays in the log only. */
export function describeDatabaseError (error: unknown): string {
  const { code, message } = error as { code?: string, message?: string }
  if (code === 'ECONNREFUSED') return 'the database server refused the connection'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the database host name does not resolve'
  if (code === 'ECONNRESET' || code === '57P01' || code === '57P02' || code === '57P03') return 'the database server closed the connection'
  if (code === '28P01' || code === '28000') return 'the database refused the credentials'
  if (code === '3D000') return 'the database does not exist'
  if (code === '57014' || /timeout|timed out/i.test(message ?? '')) return 'the database did not answer in time'
  // Class 53, insufficient resources: the operator's problem, named (it was 'refused the statement (SQLSTATE 53100)').
  if (code === '53100') return 'the database\'s disk is full'
  if (code === '53200') return 'the database is out of memory'
  if (code === '53300') return 'the database has no connection left'
  if (/Connection terminated|not queryable|ended/i.test(message ?? '')) return 'the database connection was lost'
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return `the database refused the statement (SQLSTATE ${code})`
  return 'the database cannot be reached'
}

/**
 * A statement the database refused for the values of its rows (SQLSTATE class 22, data exception, or 23, integrity
 * constraint violation), not for the database's state: retrying the same row cannot succeed, other rows can.
 */
export function isRowFault (error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code
  return error instanceof RecordStoreError && typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code)
}

/** Runs one database call; any failure becomes a RecordStoreError with our reason and the original as its cause. */
export async function guarded<T> (work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    if (error instanceof RecordStoreError) throw error
    throw new RecordStoreError(describeDatabaseError(error), { cause: error })
  }
}

/** Answered instead of a prediction that could not be recorded (an answer that is not recorded is not given). */
export class RecordsUnavailableError extends RetryLaterError {
  constructor (reason: string, retryAfterSeconds = 5) {
    super('RECORDS_UNAVAILABLE', `Predictions cannot be recorded right now (${reason}), and none is answered without its record: retry after ${retryAfterSeconds} s.`, retryAfterSeconds)
  }
}

export class PredictionNotFoundError extends ServiceError {
  constructor (id: string) {
    super('PREDICTION_NOT_FOUND', 404, `No prediction ${id} is recorded for this caller (it may be past its retention).`)
  }
}

export class RecordsApiDisabledError extends ServiceError {
  constructor (why: string) {
    super('RECORDS_API_DISABLED', 403, `The records API is off on this instance: ${why}.`)
  }
}

export class InvalidTimeError extends ServiceError {
  constructor (parameter: string) {
    super('VALIDATION_ERROR', 400, `\`${parameter}\` is not a time this API can search: give an ISO 8601 time with a zone, between the years 0001 and 9999 in UTC.`)
  }
}

/** A window that ends before it begins: every record would be left out, which reads as 'nothing was recorded'. */
export class EmptyTimeRangeError extends ServiceError {
  constructor () {
    super('VALIDATION_ERROR', 400, '`since` is after `until`: nothing can be in between (`since` is the earliest time, inclusive; `until` the end, exclusive).')
  }
}

export class InvalidCursorError extends ServiceError {
  constructor () {
    super('INVALID_CURSOR', 400, 'The cursor is not one this service returned in `next`; start again without it.')
  }
}

export class UploadNotKeptError extends ServiceError {
  constructor (id: string) {
    super('UPLOAD_NOT_KEPT', 404, `The upload of prediction ${id} is no longer kept (past UPLOAD_RETENTION, or uploads are not kept): its overlay cannot be drawn.`)
  }
}

/**
 * `readAllScope`, given when the caller reads only the instances it sent (it lacks that scope): the study may well be
 * there, sent by another caller; a DICOM node's instances are `dicom:<calling AE title>`'s, which no HTTP caller is.
 */
export class StudyNotFoundError extends ServiceError {
  constructor (uid: string, readAllScope?: string) {
    super('STUDY_NOT_FOUND', 404, `No instance of study ${uid} is recorded for this caller (none was received, or they are past their retention).` +
      (readAllScope === undefined ? '' : ` These credentials read only the instances they sent: instances pushed to the DICOM node, or sent with other credentials, need the ${readAllScope} scope.`))
  }
}
