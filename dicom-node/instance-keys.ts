import { setImmediate as nextTurn } from 'node:timers/promises'
import dicomParser from 'dicom-parser'
import { isDicomUid } from '../inference/dicom/dataset.js'
import { inflatePrefix } from '../inference/dicom/inflate.js'
import { dicomParserInput } from '../inference/sniff.js'

/** What identifies a received instance and decides whether it is classified: UIDs and SOP class, never patient data. */
export interface InstanceKeys {
  sopClassUid?: string
  sopInstanceUid?: string
  studyInstanceUid?: string
  seriesInstanceUid?: string
}

const TAG = { sopClassUid: 'x00080016', sopInstanceUid: 'x00080018', studyInstanceUid: 'x0020000d', seriesInstanceUid: 'x0020000e' } as const

/**
 * The most of a file (or of its inflated data set) read for its keys. This parse runs on the event loop, and
 * dicom-parser's cost is per element: a header of 1M empty 8-byte elements held it for seconds. 256 KiB hold at most
 * 32K elements, while every shared and pydicom test file (102) has its SeriesInstanceUID within its first 5.5 kB.
 * A file whose keys lie further keeps those its File Meta Information (or the C-STORE command) gives; its
 * classification is unaffected (the decoder, in its worker threads, reads it whole). Figures: docs/hospital.md.
 */
export const KEYS_PREFIX_BYTES = 256 * 1024

/**
 * The keys of a Part 10 file. They come in ascending tag order, SeriesInstanceUID (0020,000E) last: parsing stops
 * there (dicom-parser's untilTag, top-level elements only), so whatever follows (private groups such as Siemens' CSA
 * headers, the image attributes, the pixels) is never parsed here. `known` (from the C-STORE command) fills what the
 * file does not give, when it is a UID: the command comes from the peer as sent, and a refused instance is recorded
 * with its keys (a NUL made that write fail, and the refusal was lost from its study). Never throws: a data set too
 * broken to read still gets a refusal, with whatever keys are known.
 */
export function readInstanceKeys (bytes: Buffer, known: InstanceKeys = {}): InstanceKeys {
  // Read as the decoder reads it, a data set written without the preamble too: else STOW-RS stored with empty UIDs a
  // file /predict classified, and POST /studies/{uid} refused it.
  const { part10: prefix, syntax } = dicomParserInput(bytes, KEYS_PREFIX_BYTES)
  let dataSet: dicomParser.DataSet | undefined
  let meta: dicomParser.DataSet | undefined
  try {
    dataSet = dicomParser.parseDicom(prefix, {
      ...syntax,
      untilTag: TAG.seriesInstanceUid,
      // Left to itself, dicom-parser inflates a deflated data set whole (zlib.inflateRawSync, on the event loop): a
      // 20 MiB upload can inflate to gigabytes. One push of inflatePrefix may overshoot by megabytes: cut to the bound.
      inflater: (part10: Uint8Array, position: number) =>
        Buffer.concat([part10.subarray(0, position), ...inflatePrefix(part10.subarray(position), KEYS_PREFIX_BYTES)]).subarray(0, KEYS_PREFIX_BYTES)
    })
  } catch (error) {
    // dicom-parser hands back what it read before the fault (the end of the prefix is one), without the File Meta
    // Information it read first: read again, that group alone.
    dataSet = typeof error === 'object' && error !== null && 'dataSet' in error ? (error as { dataSet?: dicomParser.DataSet }).dataSet : undefined
    try {
      meta = dicomParser.readPart10Header(prefix)
    } catch {
      meta = undefined
    }
  }
  const read = (tag: string, from = dataSet): string | undefined => {
    try {
      const value = from?.string(tag)?.trim()
      return value === undefined || !isDicomUid(value) ? undefined : value
    } catch {
      return undefined
    }
  }
  const given = (value: string | undefined): string | undefined => value !== undefined && isDicomUid(value) ? value : undefined
  return {
    sopClassUid: read(TAG.sopClassUid) ?? read('x00020002') ?? read('x00020002', meta) ?? given(known.sopClassUid),
    sopInstanceUid: read(TAG.sopInstanceUid) ?? read('x00020003') ?? read('x00020003', meta) ?? given(known.sopInstanceUid),
    studyInstanceUid: read(TAG.studyInstanceUid) ?? given(known.studyInstanceUid),
    seriesInstanceUid: read(TAG.seriesInstanceUid) ?? given(known.seriesInstanceUid)
  }
}

/**
 * The keys of each file of one request (STOW-RS, POST /predict/batch), in order. One file's parse is bounded
 * (KEYS_PREFIX_BYTES), but a request may carry up to STOW_MAX_INSTANCES (1000) or BATCH_MAX_FILES of them: the event
 * loop is given back between files, so other requests and health checks are served meanwhile.
 */
export async function readEachInstanceKeys (files: readonly Buffer[]): Promise<InstanceKeys[]> {
  const keys: InstanceKeys[] = []
  for (const bytes of files) {
    if (keys.length > 0) await nextTurn()
    keys.push(readInstanceKeys(bytes))
  }
  return keys
}
