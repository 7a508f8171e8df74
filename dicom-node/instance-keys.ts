import dicomParser from 'dicom-parser'
import { isDicomUid, MAX_HEADER_BYTES } from '../inference/dicom/dataset.js'
import { inflatePrefix } from '../inference/dicom/inflate.js'

/** What identifies a received instance and decides whether it is classified: UIDs and SOP class, never patient data. */
export interface InstanceKeys {
  sopClassUid?: string
  sopInstanceUid?: string
  studyInstanceUid?: string
  seriesInstanceUid?: string
}

const TAG = { sopClassUid: 'x00080016', sopInstanceUid: 'x00080018', studyInstanceUid: 'x0020000d', seriesInstanceUid: 'x0020000e' } as const

/**
 * The keys of a Part 10 file, read up to its Pixel Data (the pixels are the classifier's business, in its worker
 * threads). `known` (from the C-STORE command, or the File Meta Information) fills what the data set does not give.
 * Never throws: a data set too broken to read still gets a refusal, with whatever keys are known.
 */
export function readInstanceKeys (bytes: Buffer, known: InstanceKeys = {}): InstanceKeys {
  let dataSet: dicomParser.DataSet | undefined
  try {
    dataSet = dicomParser.parseDicom(bytes, {
      untilTag: 'x7fe00010',
      // Left to itself, dicom-parser inflates a deflated data set whole (zlib.inflateRawSync, on the event loop): a
      // 20 MiB upload can inflate to gigabytes. The keys come before the pixels, within what the decoder allows there.
      inflater: (part10: Uint8Array, position: number) =>
        Buffer.concat([part10.subarray(0, position), ...inflatePrefix(part10.subarray(position), MAX_HEADER_BYTES)])
    })
  } catch (error) {
    // dicom-parser hands back what it read before the fault (the end of an inflated prefix is one).
    dataSet = typeof error === 'object' && error !== null && 'dataSet' in error ? (error as { dataSet?: dicomParser.DataSet }).dataSet : undefined
  }
  const read = (tag: string): string | undefined => {
    try {
      const value = dataSet?.string(tag)?.trim()
      return value === undefined || !isDicomUid(value) ? undefined : value
    } catch {
      return undefined
    }
  }
  return {
    sopClassUid: read(TAG.sopClassUid) ?? read('x00020002') ?? known.sopClassUid,
    sopInstanceUid: read(TAG.sopInstanceUid) ?? read('x00020003') ?? known.sopInstanceUid,
    studyInstanceUid: read(TAG.studyInstanceUid) ?? known.studyInstanceUid,
    seriesInstanceUid: read(TAG.seriesInstanceUid) ?? known.seriesInstanceUid
  }
}
