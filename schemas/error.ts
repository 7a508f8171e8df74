import { Type, type Static } from '@sinclair/typebox'
import { refTo } from './ref.js'

export const ErrorSchema = Type.Object({
  statusCode: Type.Integer({ description: 'HTTP status, repeated in the body.' }),
  code: Type.String({
    description: 'Stable machine-readable code, e.g. NO_FILE, FILE_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, ' +
      'CORRUPT_IMAGE, BLANK_IMAGE, IMAGE_TOO_LARGE, MODEL_NOT_READY, MODEL_FAILED, VALIDATION_ERROR, NOT_FOUND, INTERNAL_ERROR; ' +
      'hardening: UNAUTHORIZED (401), FORBIDDEN (403), REQUEST_TIMEOUT (408), RATE_LIMITED (429), ' +
      'HEADERS_TOO_LARGE (431), MALFORMED_MULTIPART, TOO_MANY_FILES, TOO_MANY_PARTS (400), OVERLOADED and SHUTTING_DOWN (503); ' +
      'records: RECORDS_UNAVAILABLE (503), UPLOADS_UNAVAILABLE (503), PREDICTION_NOT_FOUND (404), RECORDS_API_DISABLED (403), INVALID_CURSOR (400); ' +
      'DICOM: UNSUPPORTED_MODALITY, DICOM_NO_PIXEL_DATA, CORRUPT_DICOM, TOO_MANY_FRAMES, DICOM_TOO_LARGE, DECODE_TIMEOUT (422), ' +
      'UNSUPPORTED_TRANSFER_SYNTAX, UNSUPPORTED_DICOM_IMAGE (415), DECODER_BUSY (503); NOT_ACCEPTABLE (406); ' +
      'studies: STUDY_NOT_FOUND (404); overlay: UPLOAD_NOT_KEPT (404).'
  }),
  error: Type.String({ description: 'HTTP reason phrase.' }),
  message: Type.String({ description: 'What went wrong, written for the caller.' })
}, { $id: 'Error', title: 'Error' })

export type ErrorReply = Static<typeof ErrorSchema>

/** Response entries for the given error statuses, all with the shared Error body. */
export function errorResponses (...statuses: number[]): Record<number, ReturnType<typeof refTo<typeof ErrorSchema>>> {
  return Object.fromEntries(statuses.map((status) => [status, refTo(ErrorSchema)]))
}
