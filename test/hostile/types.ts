/** What the service may answer for one case: 200, or one of the typed errors (status + stable code). */
export interface Outcome {
  status: number
  code?: string
}

export const ACCEPTED: Outcome[] = [{ status: 200 }]
export const NO_FILE: Outcome[] = [{ status: 400, code: 'NO_FILE' }]
export const TOO_MANY_FILES: Outcome[] = [{ status: 400, code: 'TOO_MANY_FILES' }]
export const TOO_MANY_PARTS: Outcome[] = [{ status: 400, code: 'TOO_MANY_PARTS' }]
export const VALIDATION: Outcome[] = [{ status: 400, code: 'VALIDATION_ERROR' }]
export const MALFORMED: Outcome[] = [{ status: 400, code: 'MALFORMED_MULTIPART' }]
export const FILE_TOO_LARGE: Outcome[] = [{ status: 413, code: 'FILE_TOO_LARGE' }]
export const UNSUPPORTED: Outcome[] = [{ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }]
export const CORRUPT: Outcome[] = [{ status: 422, code: 'CORRUPT_IMAGE' }]
export const TOO_LARGE: Outcome[] = [{ status: 422, code: 'IMAGE_TOO_LARGE' }]
export const TOO_MANY_SCANS: Outcome[] = [{ status: 422, code: 'TOO_MANY_SCANS' }]
export const TOO_MANY_SEGMENTS: Outcome[] = [{ status: 422, code: 'TOO_MANY_SEGMENTS' }]
export const TOO_MANY_TEXT_CHUNKS: Outcome[] = [{ status: 422, code: 'TOO_MANY_TEXT_CHUNKS' }]
export const TOO_MANY_CHUNKS: Outcome[] = [{ status: 422, code: 'TOO_MANY_CHUNKS' }]
export const CORRUPT_DICOM: Outcome[] = [{ status: 422, code: 'CORRUPT_DICOM' }]
export const DICOM_TOO_LARGE: Outcome[] = [{ status: 422, code: 'DICOM_TOO_LARGE' }]
export const DECODE_TIMEOUT: Outcome[] = [{ status: 422, code: 'DECODE_TIMEOUT' }]
/** Decoded whole, and one grey level throughout by construction (inference/blank.ts): nothing to classify. */
export const BLANK: Outcome[] = [{ status: 422, code: 'BLANK_IMAGE' }]
/** Damage a decoder may or may not notice (a flipped bit in entropy data still yields pixels). */
export const DECODED_OR_CORRUPT: Outcome[] = [...ACCEPTED, ...CORRUPT, ...TOO_LARGE]

export type Category = 'truncated' | 'bit-flip' | 'wrong-magic' | 'polyglot' | 'other-format' | 'bomb' | 'valid-variant' |
'tiny-file' | 'file-too-large' | 'name-and-type' | 'filename' | 'multiple-files' | 'missing-file' | 'extra-fields' |
'malformed-multipart' | 'non-multipart' | 'deflate-bomb' | 'codestream-size' | 'rle-budget' | 'deep-nesting' | 'element-flood'

/** One file sent alone in the `file` field. */
export interface FileCase {
  category: Category
  name: string
  data: Buffer
  filename?: string
  contentType?: string
  expected: Outcome[]
}

/** One multipart part; `headers` replaces the generated part headers (for malformed dispositions). */
export interface FormPart {
  name: string
  filename?: string
  contentType?: string
  headers?: string
  data: Buffer | string
}

export interface HostileRequest {
  method: 'POST'
  url: string
  headers: Record<string, string>
  payload: Buffer
}

export interface HostileCase {
  category: Category
  name: string
  request: HostileRequest
  expected: Outcome[]
}

/** Real ct-kidney files the cases start from: 384 px slices and untouched full-size originals. */
export interface Sources {
  slices: Buffer[]
  originals: Buffer[]
}
