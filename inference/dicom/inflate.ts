import { Inflate } from 'fflate'
import { ServiceError } from '../errors.js'
import { CorruptDicomError, DicomTooLargeError } from './errors.js'

/**
 * Compressed input pushed at a time: one push inflates to at most about 1032 times this (DEFLATE's largest ratio,
 * about 16 MiB) before the output is measured against the cap again. Smaller pushes make fflate far slower.
 */
const INPUT_STEP = 16 * 1024
/** Inflated size at which the header is first looked for; then at every doubling (a few looks in all). */
const FIRST_LOOK = 64 * 1024

export interface InflateBudget {
  /** Most the data set may inflate to before its Pixel Data element has been reached. */
  beforePixelData: number
  /**
   * Looks for the Pixel Data element in an inflated prefix of the data set: undefined while it is not there yet,
   * else the most the whole data set may inflate to, from the header's own Rows, Columns, BitsAllocated and
   * frames (it throws the typed refusal when those exceed the pixel budget).
   */
  fromHeader: (inflatedPrefix: Buffer) => number | undefined
}

/**
 * Raw DEFLATE (the data set of Deflated Explicit VR Little Endian, 1.2.840.10008.1.2.1.99), streamed with a hard
 * cap on the output: a few kilobytes can otherwise inflate to gigabytes. Returns the inflated chunks, in order.
 */
export function inflateWithinBudget (deflated: Uint8Array, budget: InflateBudget): Uint8Array[] {
  let chunks: Uint8Array[] = []
  let total = 0
  let ended = false
  let limit: number | undefined
  let nextLook = FIRST_LOOK
  const lookForHeader = (): void => {
    const prefix = Buffer.concat(chunks, total)
    chunks = [prefix]
    limit = budget.fromHeader(prefix)
    nextLook = total * 2
  }
  const inflater = new Inflate((chunk, final) => {
    chunks.push(chunk)
    total += chunk.length
    ended ||= final
  })
  try {
    for (let offset = 0; offset < deflated.length && !ended; offset += INPUT_STEP) {
      inflater.push(deflated.subarray(offset, offset + INPUT_STEP), offset + INPUT_STEP >= deflated.length)
      if (limit === undefined && (total >= nextLook || total > budget.beforePixelData || ended)) lookForHeader()
      if (limit === undefined && total > budget.beforePixelData) {
        throw new DicomTooLargeError(`its data set inflates to more than ${budget.beforePixelData} bytes before the pixel data`)
      }
      if (limit !== undefined && total > limit) {
        throw new DicomTooLargeError(`its data set inflates to more than the ${limit} bytes its header accounts for`)
      }
    }
  } catch (error) {
    if (error instanceof ServiceError) throw error
    throw new CorruptDicomError('the deflated data set is corrupt')
  }
  if (!ended) throw new CorruptDicomError('the deflated data set is truncated')
  return chunks
}

/**
 * The start of a raw DEFLATE stream, about `maxBytes` of it (one push more at most), for a reader that needs only the
 * elements before the pixels (dicom-node/instance-keys.ts). A corrupt stream ends the prefix where it breaks.
 */
export function inflatePrefix (deflated: Uint8Array, maxBytes: number): Uint8Array[] {
  const chunks: Uint8Array[] = []
  let total = 0
  let ended = false
  const inflater = new Inflate((chunk, final) => {
    chunks.push(chunk)
    total += chunk.length
    ended ||= final
  })
  try {
    for (let offset = 0; offset < deflated.length && !ended && total < maxBytes; offset += INPUT_STEP) {
      inflater.push(deflated.subarray(offset, offset + INPUT_STEP), offset + INPUT_STEP >= deflated.length)
    }
  } catch {
    // the reader parses what inflated before the fault
  }
  return chunks
}
