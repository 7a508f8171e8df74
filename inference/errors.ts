/**
 * Typed failures. Each carries a stable `code` that clients can switch on and the HTTP status the service
 * answers with; the one error handler in plugins/app/errors.ts turns them into JSON. Messages are written
 * for the caller: they never contain stack traces, file paths or image bytes.
 */
export class ServiceError extends Error {
  readonly code: string
  readonly statusCode: number

  constructor (code: string, statusCode: number, message: string) {
    super(message)
    this.name = new.target.name
    this.code = code
    this.statusCode = statusCode
  }
}

/** A refusal for now, not for this input: the answer carries `Retry-After` (plugins/app/errors.ts sends it). */
export class RetryLaterError extends ServiceError {
  readonly retryAfterSeconds: number

  constructor (code: string, message: string, retryAfterSeconds: number) {
    super(code, 503, message)
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/**
 * The service's in-flight byte budget (request bodies and decoded images, MAX_INFLIGHT_BYTES) is spent by other
 * requests: this one is refused as its bytes arrive, before it adds to the memory the process holds.
 */
export class InflightBudgetError extends RetryLaterError {
  constructor (retryAfterSeconds: number) {
    super('INFLIGHT_BUDGET_FULL', 'The service holds as many uploads in memory as it may; retry after the delay given in Retry-After.', retryAfterSeconds)
  }
}

/**
 * An upload still arriving SLOW_UPLOAD_AFTER_MS after it began counts as slow, and slow uploads together may hold only
 * SLOW_UPLOADS_SHARE of the in-flight byte budget: this one does not fit in what others hold. Without that share, a
 * few clients trickling their bodies held the whole budget until REQUEST_TIMEOUT_MS and every other upload was refused.
 */
export class SlowUploadsFullError extends RetryLaterError {
  constructor (retryAfterSeconds: number) {
    super('SLOW_UPLOADS_FULL', 'The service holds as many slowly arriving uploads as it may; retry after the delay given in Retry-After, or send faster.', retryAfterSeconds)
  }
}

/**
 * One request needs more bytes in memory than the whole in-flight budget, or, arriving slowly, more than slow uploads may
 * hold together: it can never be served as it is, so it is not told to retry.
 */
export class RequestTooLargeError extends ServiceError {
  constructor (limitBytes: number, slow = false) {
    super('REQUEST_TOO_LARGE', 413, slow
      ? `The request is arriving slowly and needs more than the ${limitBytes} bytes the service may hold for slowly arriving uploads; send fewer or smaller files per request.`
      : `The request needs more than the ${limitBytes} bytes the service may hold in memory for uploads; send fewer or smaller files.`)
  }
}

export class NoFileError extends ServiceError {
  constructor (message = 'The request has no file: send one image in the multipart field "file".') {
    super('NO_FILE', 400, message)
  }
}

/** No file in a POST /predict/batch request, whose files go in the repeated field "files". */
export class NoBatchFileError extends NoFileError {
  constructor () {
    super('The request has no file: send one or more files in the repeated multipart field "files".')
  }
}

export class FileTooLargeError extends ServiceError {
  constructor (maxBytes: number) {
    super('FILE_TOO_LARGE', 413, `The file is larger than the limit of ${maxBytes} bytes.`)
  }
}

export class UnsupportedMediaTypeError extends ServiceError {
  constructor (message = 'Only JPEG, PNG and DICOM files are accepted (detected from the file content; DICOM as a Part 10 file, ' +
    'or as a little-endian data set without the preamble that starts with a (0002,xxxx) or (0008,xxxx) element).') {
    super('UNSUPPORTED_MEDIA_TYPE', 415, message)
  }
}

export class CorruptImageError extends ServiceError {
  constructor (message = 'The image could not be decoded: the file is truncated or corrupt.') {
    super('CORRUPT_IMAGE', 422, message)
  }
}

/** Nothing to classify: one flat grey level where the image is (inference/blank.ts). */
export class BlankImageError extends ServiceError {
  constructor () {
    super('BLANK_IMAGE', 422, 'The image is blank: one grey level throughout (for DICOM, in the soft-tissue window the model reads), so there is nothing to classify. Check the export.')
  }
}

export class ImageTooLargeError extends ServiceError {
  constructor (width: number, height: number, maxPixels: number) {
    super('IMAGE_TOO_LARGE', 422,
      `The image is ${width}x${height} pixels, more than the limit of ${maxPixels} pixels.`)
  }
}

/** A JPEG in more scans than encoders write: each scan is decoded over the whole image (inference/image-header.ts). */
export class TooManyScansError extends ServiceError {
  constructor (maxScans: number) {
    super('TOO_MANY_SCANS', 422, `The JPEG is split into more than ${maxScans} scans (passes over the image), more than encoders write, ` +
      'and each scan is decoded over the whole image: export it again, or send it as PNG or DICOM.')
  }
}

/** A JPEG with more marker segments than encoders write: libjpeg keeps each in memory (inference/jpeg-structure.ts). */
export class TooManySegmentsError extends ServiceError {
  constructor (maxSegments: number) {
    super('TOO_MANY_SEGMENTS', 422, `The JPEG holds more than ${maxSegments} marker segments (metadata and tables), more than encoders write, ` +
      'and the decoder keeps them in memory: export it again, or send it as PNG or DICOM.')
  }
}

/** A PNG in more chunks than encoders write: each chunk header is read before decoding (inference/image-header.ts). */
export class TooManyChunksError extends ServiceError {
  constructor (maxChunks: number) {
    super('TOO_MANY_CHUNKS', 422, `The PNG is split into more than ${maxChunks} chunks, more than encoders write, ` +
      'and each is read before the image is decoded: export it again, or send it as JPEG or DICOM.')
  }
}

/** A PNG with more compressed text than exporters write: each chunk is inflated in memory (inference/image-header.ts). */
export class TooManyTextChunksError extends ServiceError {
  constructor (maxChunks: number) {
    super('TOO_MANY_TEXT_CHUNKS', 422, `The PNG holds more than ${maxChunks} compressed text chunks (zTXt, iTXt), more than exporters write, ` +
      'and the decoder inflates each in memory: export it again without them, or send DICOM.')
  }
}

/** Seconds a caller should wait before retrying while the model loads (a load with its warm-up takes well under a second here). */
export const MODEL_LOAD_RETRY_AFTER_SECONDS = 2

export class ModelNotReadyError extends RetryLaterError {
  constructor () {
    super('MODEL_NOT_READY', 'The model is not loaded yet; retry after the delay given in Retry-After.', MODEL_LOAD_RETRY_AFTER_SECONDS)
  }
}

/**
 * The model runtime (the onnxruntime worker thread) has stopped: this instance cannot classify until restarted.
 * `reason` is ours; the runtime's own error, if any, is kept as `cause` for the log, never sent to a client.
 */
export class ModelFailedError extends ServiceError {
  constructor (reason: string, cause?: Error) {
    super('MODEL_FAILED', 503, `The model runtime stopped (${reason}); this service instance needs a restart.`)
    if (cause !== undefined) this.cause = cause
  }
}
