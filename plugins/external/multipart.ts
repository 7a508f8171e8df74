import fp from 'fastify-plugin'
import multipart, { type MultipartFile } from '@fastify/multipart'
import type { FastifyRequest } from 'fastify'
import { FileTooLargeError, UnsupportedMediaTypeError } from '../../inference/errors.js'

const UPLOADED_BYTES = Symbol('uploaded bytes')

type UploadedPart = MultipartFile & { [UPLOADED_BYTES]?: Buffer }

/** The bytes of a file part, as `onFile` below collected them. */
export function uploadedBytes (part: MultipartFile): Buffer {
  const bytes = (part as UploadedPart)[UPLOADED_BYTES]
  if (bytes === undefined) throw new Error('multipart file part read without the service\'s onFile')
  return bytes
}

/**
 * Reads one file part into memory as its chunks arrive, each chunk charged to the request's share of the
 * in-flight byte budget (plugins/app/inflight.ts) before it is kept: a request is refused while it uploads, not
 * after. Each chunk is copied at once into one SharedArrayBuffer (sized from Content-Length, grown only for a
 * body without one), so the file is held once, not as chunks and again as a whole, and a DICOM decoder thread
 * reads it without a copy. Untouched capacity is never written, so it does not become resident memory.
 */
async function collectFile (this: FastifyRequest, part: MultipartFile): Promise<void> {
  const maxFileBytes = this.server.config.maxFileBytes
  const declared = Number(this.headers['content-length'])
  let bytes = Buffer.from(new SharedArrayBuffer(Number.isInteger(declared) && declared > 0 ? Math.min(declared, maxFileBytes) : 64 * 1024))
  let length = 0
  for await (const chunk of this.inflight.receive(part.file)) {
    if (length + chunk.length > bytes.length) {
      const grown = Buffer.from(new SharedArrayBuffer(Math.min(maxFileBytes, Math.max(2 * bytes.length, length + chunk.length))))
      bytes.copy(grown, 0, 0, length)
      bytes = grown
    }
    length += chunk.copy(bytes, length)
  }
  if (part.file.truncated) throw new FileTooLargeError(maxFileBytes)
  ;(part as UploadedPart)[UPLOADED_BYTES] = bytes.subarray(0, length)
}

/**
 * The upload routes' file fields (`file` on /predict, `files` on /predict/batch). A part in one of them is a file
 * whether or not its Content-Disposition names a file: .NET's `MultipartFormDataContent.Add(content, "file")` and
 * curl's `-F 'file=<slice.jpg'` send none, and busboy makes such a part a text field, which the body schema
 * refused as VALIDATION_ERROR although the image was in the right field.
 */
const FILE_FIELDS = new Set(['file', 'files'])

function isFilePart (name: string | undefined, contentType: string | undefined, filename: string | undefined): boolean {
  return filename !== undefined || contentType === 'application/octet-stream' || FILE_FIELDS.has(name ?? '')
}

/**
 * busboy's buffer for one part (16 KiB by default). A part busboy skips (no Content-Disposition, one that is not
 * form-data) is read by nobody; when more than this buffer of it arrived in one chunk with the closing boundary,
 * busboy never called back for that chunk and never finished (@fastify/busboy 3.2.6): the request hung until
 * HANDLER_TIMEOUT_MS (120 s) and was answered 408, a 27 kB JPEG in such a part over a plain socket. A socket hands
 * Node at most 64 KiB at a time, so twice that always takes the chunk; the service's own reader drains every file
 * part as it arrives, so the larger buffer does not fill.
 */
const PART_BUFFER_BYTES = 128 * 1024

/**
 * Files of one POST /predict: its schema takes one `file`. This was MAX_FILES, and any other value made a second
 * file a 400 VALIDATION_ERROR about the body's schema instead of TOO_MANY_FILES; POST /predict/batch sets its own.
 */
export const PREDICT_MAX_FILES = 1

/**
 * Uploads are parsed into memory with hard limits (the largest accepted file is MAX_FILE_BYTES, all requests
 * together hold at most MAX_INFLIGHT_BYTES): the bytes are needed whole for format sniffing and decoding, and
 * nothing touches disk before the image is valid.
 */
export default fp(async (app) => {
  await app.register(multipart, {
    attachFieldsToBody: true,
    isPartAFile: isFilePart,
    onFile: collectFile,
    throwFileSizeLimit: true,
    fileHwm: PART_BUFFER_BYTES,
    limits: {
      fileSize: app.config.maxFileBytes,
      files: PREDICT_MAX_FILES,
      fields: app.config.maxFields,
      fieldNameSize: 100,
      fieldSize: app.config.maxFieldBytes,
      parts: PREDICT_MAX_FILES + app.config.maxFields,
      headerPairs: 100
    }
  })
  // A JSON or text body sent to an upload route is refused by type before any parser reads it. So is a compressed
  // body on any route that takes one (this one's, STOW-RS's multipart/related): no parser here decodes a
  // Content-Encoding, and a gzipped form was refused as 'malformed' or as one whose 'boundary never occurs'.
  app.addHook('onRequest', async (request) => {
    const consumes = request.routeOptions.schema?.consumes
    if (consumes === undefined) return
    const coding = request.headers['content-encoding']?.trim().toLowerCase()
    if (coding !== undefined && coding !== '' && coding !== 'identity') {
      throw new UnsupportedMediaTypeError('The request body has a Content-Encoding (gzip, deflate, br…), which this service does not decode: send it uncompressed.')
    }
    const mediaType = request.headers['content-type']?.split(';')[0].trim().toLowerCase()
    if (consumes.includes('multipart/form-data') && mediaType !== undefined && mediaType !== 'multipart/form-data') {
      throw new UnsupportedMediaTypeError('Send the image as multipart/form-data in the field "file".')
    }
  })
}, { name: 'multipart', dependencies: ['config', 'inflight'] })
