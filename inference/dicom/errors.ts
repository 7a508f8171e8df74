import { RetryLaterError, ServiceError } from '../errors.js'

/** A DICOM object whose pixel encoding this service cannot decode; the message names the transfer syntax UID. */
export class UnsupportedTransferSyntaxError extends ServiceError {
  readonly transferSyntaxUid: string

  constructor (transferSyntaxUid: string, name?: string) {
    super('UNSUPPORTED_TRANSFER_SYNTAX', 415,
      `DICOM transfer syntax ${transferSyntaxUid}${name === undefined ? '' : ` (${name})`} is not supported: ` +
      'send it uncompressed, deflated, or as JPEG baseline, JPEG Lossless, JPEG-LS, JPEG 2000 or RLE.')
    this.transferSyntaxUid = transferSyntaxUid
  }
}

/** A readable DICOM object that is not a greyscale image this service can classify (e.g. RGB, 32-bit, no pixels). */
export class UnsupportedDicomImageError extends ServiceError {
  constructor (detail: string) {
    super('UNSUPPORTED_DICOM_IMAGE', 415, `DICOM image not supported: ${detail}.`)
  }
}

/** A readable DICOM object that holds no image: a report, a DICOMDIR, a presentation state, a header-only export. */
export class NoPixelDataError extends ServiceError {
  constructor () {
    super('DICOM_NO_PIXEL_DATA', 422, 'The DICOM file has no Pixel Data (7FE0,0010): it holds no image to classify (a report, a directory or a header only).')
  }
}

/** The model reads CT: other modalities are refused, naming the one the file declares (DICOM_MODALITIES widens the list). */
export class UnsupportedModalityError extends ServiceError {
  readonly modality: string

  constructor (modality: string | undefined, accepted: readonly string[]) {
    super('UNSUPPORTED_MODALITY', 422, `${modality === undefined ? 'The DICOM file declares no Modality (0008,0060)' : `DICOM modality ${modality} is not classified`}: ` +
      `this service reads ${accepted.join(', ')} images (and 8-bit secondary captures of them).`)
    this.modality = modality ?? ''
  }
}

export class CorruptDicomError extends ServiceError {
  constructor (detail: string) {
    super('CORRUPT_DICOM', 422, `The DICOM file could not be read: ${detail}.`)
  }
}

/**
 * Multi-frame objects (e.g. enhanced CT) keep rescale and window per frame in functional group sequences;
 * they are refused clearly rather than classified with the wrong Hounsfield units.
 */
export class MultiFrameDicomError extends ServiceError {
  constructor (frames: number) {
    super('MULTI_FRAME_DICOM', 422,
      `The DICOM object has ${frames} frames; only single-frame images are classified: export one file per slice.`)
  }
}

export class TooManyFramesError extends ServiceError {
  constructor (frames: number, maxFrames: number) {
    super('TOO_MANY_FRAMES', 422, `The DICOM object has ${frames} frames, more than the limit of ${maxFrames}.`)
  }
}

/** A DICOM object that would need more memory than its budget allows: refused while inflating, before decoding. */
export class DicomTooLargeError extends ServiceError {
  constructor (detail: string) {
    super('DICOM_TOO_LARGE', 422, `The DICOM file is larger than its header accounts for or than the service accepts: ${detail}.`)
  }
}

/** Every DICOM decoder thread is busy and the queue in front of them is full. */
export class DecoderBusyError extends RetryLaterError {
  constructor (maxQueue: number, retryAfterSeconds: number) {
    super('DECODER_BUSY', `All DICOM decoders are busy and ${maxQueue} files are waiting for one; retry after ${retryAfterSeconds} s.`, retryAfterSeconds)
  }
}

/** The file took longer than DECODE_TIMEOUT_MS to decode: its decoder thread was stopped and replaced. */
export class DecodeTimeoutError extends ServiceError {
  constructor (timeoutMs: number) {
    super('DECODE_TIMEOUT', 422, `The DICOM file was not decoded within ${timeoutMs} ms and was abandoned.`)
  }
}
