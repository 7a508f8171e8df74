import { ServiceError } from '../inference/errors.js'

/** A STOW-RS request body that is not the multipart/related; type="application/dicom" it must be. */
export class StowMediaTypeError extends ServiceError {
  constructor (why: string) {
    super('UNSUPPORTED_MEDIA_TYPE', 415, `STOW-RS takes multipart/related; type="application/dicom" with one DICOM Part 10 file per part: ${why}.`)
  }
}

export class MalformedMultipartRelatedError extends ServiceError {
  constructor (why: string) {
    super('MALFORMED_MULTIPART', 400, `The multipart/related body cannot be read: ${why}.`)
  }
}

/** Content-Type parameters, lower-cased names, quotes removed. */
function parameters (contentType: string): Map<string, string> {
  const found = new Map<string, string>()
  for (const match of contentType.matchAll(/;\s*([A-Za-z0-9_-]+)\s*=\s*("([^"]*)"|[^;\s]*)/g)) found.set(match[1].toLowerCase(), match[3] ?? match[2])
  return found
}

/** The boundary of a STOW-RS request; throws StowMediaTypeError for any other media type. */
export function stowBoundary (contentType: string | undefined): string {
  if (contentType === undefined || !/^multipart\/related\s*(;|$)/i.test(contentType.trim())) throw new StowMediaTypeError('the Content-Type is not multipart/related')
  const params = parameters(contentType)
  const type = params.get('type')?.toLowerCase()
  if (type !== undefined && type !== 'application/dicom') throw new StowMediaTypeError(`type="${type}" is not supported (metadata with bulk data is not)`)
  const boundary = params.get('boundary')
  if (boundary === undefined || boundary === '' || boundary.length > 70) throw new StowMediaTypeError('the boundary parameter is missing or longer than 70 characters')
  return boundary
}

/**
 * STOW-RS carries PS3.10 instances as application/dicom parts (PS3.18 10.5.1.4); application/octet-stream and the
 * other types are the bulk data of metadata-and-bulk-data requests, which this service does not take. A part of
 * another type refuses the request (415, as Orthanc's STOW-RS does) with a message naming the type to send: a failed
 * instance in the DICOM JSON answer carries only its FailureReason, so a per-part refusal never told the sender why.
 * A part without a Content-Type is read as DICOM.
 */
export function requireDicomParts (parts: RelatedPart[]): void {
  const index = parts.findIndex((part) => part.contentType !== undefined && part.contentType !== 'application/dicom')
  if (index === -1) return
  throw new StowMediaTypeError(`part ${index + 1} is of type ${parts[index].contentType?.slice(0, 100) ?? ''}; send each file as a part with ` +
    'Content-Type: application/dicom (application/octet-stream is for the bulk data of a metadata-and-bulk-data request, which this service does not take)')
}

export class TooManyInstancesError extends ServiceError {
  constructor (max: number) {
    super('TOO_MANY_FILES', 400, `STOW-RS takes at most ${max} instances in one request (STOW_MAX_INSTANCES): send a larger study in several requests.`)
  }
}

/**
 * A part repeating an earlier part's SOP Instance UID with other bytes. Both would be recorded in the same group write,
 * at the same millisecond, and the study would show whichever the database returned first. The CLI applies the same
 * rule to the files of one run, which its users never see as a request.
 */
export class DuplicateInstanceError extends ServiceError {
  constructor (sopInstanceUid: string, within: 'request' | 'run') {
    super('DUPLICATE_SOP_INSTANCE', 409, within === 'request'
      ? `SOP Instance UID ${sopInstanceUid} is also an earlier part of this request, with other bytes: only the first is classified; send a changed instance in a request of its own.`
      : `SOP Instance UID ${sopInstanceUid} is also an earlier file of this run, with other bytes: only the first is classified; classify a changed instance in a run of its own.`)
  }
}

/**
 * An instance of another study than the one the request names (STOW-RS's POST /studies/{StudyInstanceUID}, PS3.18
 * 10.5): it is not stored (C000, the request's other instances are).
 */
export class StudyMismatchError extends ServiceError {
  constructor (requested: string, found: string | undefined) {
    super('STUDY_MISMATCH', 409, `This instance is ${found === undefined ? 'of no study' : `of study ${found}`}, not of study ${requested} the request names: it was not stored.`)
  }
}

export interface RelatedPart {
  /** Content-Type of the part, lower-cased, without parameters; undefined when the part has none. */
  contentType?: string
  body: Buffer
}

/**
 * The parts of a multipart/related body (RFC 2387 / RFC 2046): each part's headers and bytes, without copies. More
 * than `maxParts` is refused before any part is looked at: a part costs the main thread work however small it is.
 */
export function splitRelated (body: Buffer, boundary: string, maxParts: number): RelatedPart[] {
  const delimiter = Buffer.from(`--${boundary}`, 'latin1')
  let position = body.indexOf(delimiter)
  if (position === -1) throw new MalformedMultipartRelatedError('the boundary never occurs')
  const parts: RelatedPart[] = []
  for (;;) {
    const afterDelimiter = position + delimiter.length
    if (body.subarray(afterDelimiter, afterDelimiter + 2).toString('latin1') === '--') return parts
    const headersEnd = body.indexOf('\r\n\r\n', afterDelimiter, 'latin1')
    if (headersEnd === -1) throw new MalformedMultipartRelatedError('a part has no end of headers')
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headersEnd + 4)
    if (next === -1) throw new MalformedMultipartRelatedError('the closing boundary is missing')
    if (parts.length === maxParts) throw new TooManyInstancesError(maxParts)
    const headers = body.subarray(afterDelimiter, headersEnd).toString('latin1')
    const contentType = /^content-type:\s*([^;\r\n]+)/im.exec(headers)?.[1].trim().toLowerCase()
    parts.push({ ...(contentType === undefined ? {} : { contentType }), body: body.subarray(headersEnd + 4, next) })
    position = next + 2
  }
}
