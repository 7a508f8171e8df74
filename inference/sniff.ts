/**
 * First step of an upload's path: what the bytes are. Decided by magic bytes only: a client's file name or
 * Content-Type is never trusted. DICOM: a Part 10 file, or a data set written without its preamble (`rawDataSet` below).
 */
export type ImageFormat = 'jpeg' | 'png' | 'dicom'

export const FILE_EXTENSIONS: Record<ImageFormat, string> = { jpeg: 'jpg', png: 'png', dicom: 'dcm' }

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

export function sniffFormat (bytes: Buffer): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg'
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png'
  if (isPart10(bytes) || rawDataSet(bytes) !== undefined) return 'dicom'
  return undefined
}

/**
 * DICOM written without the Part 10 preamble and "DICM" (older PACS exports, files copied out of a DICOM network
 * transfer): a data set that starts with a File Meta (0002,xxxx) or Identifying (0008,xxxx) element, little endian,
 * in explicit VR (two capital letters after the tag) or implicit VR (a 32-bit length after it). No text or image
 * format starts like this.
 */
export type RawDataSet =
  /** File Meta group without the preamble: the meta group names the transfer syntax. */
  | { kind: 'meta' }
  /** A bare data set: its transfer syntax is the little-endian one its first element is written in. */
  | { kind: 'dataset', transferSyntaxUid: string }

export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2'
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1'

/** A Part 10 file: 128-byte preamble, then "DICM". */
export function isPart10 (bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d
}

export function rawDataSet (bytes: Uint8Array): RawDataSet | undefined {
  if (bytes.length < 8 || isPart10(bytes)) return undefined
  const group = bytes[0] | (bytes[1] << 8)
  if (group !== 0x0002 && group !== 0x0008) return undefined
  const explicit = bytes[4] >= 0x41 && bytes[4] <= 0x5a && bytes[5] >= 0x41 && bytes[5] <= 0x5a
  const implicitLength = (bytes[4] | (bytes[5] << 8) | (bytes[6] << 16)) + bytes[7] * 0x1000000
  if (!explicit && implicitLength >= 0x10000) return undefined
  // The File Meta group is always explicit VR little endian (PS3.10 7.1).
  if (group === 0x0002) return explicit ? { kind: 'meta' } : undefined
  return { kind: 'dataset', transferSyntaxUid: explicit ? EXPLICIT_VR_LITTLE_ENDIAN : IMPLICIT_VR_LITTLE_ENDIAN }
}

/** The Part 10 preamble and "DICM" that a File Meta group written without them is given. */
const PART10_HEAD = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1')])

/**
 * What dicom-parser reads of a DICOM upload, its first `limit` bytes at most: a Part 10 file as it is, a File Meta
 * group written without its preamble given one (a copy), a bare data set as it is, with the syntax it starts in as
 * parseDicom's TransferSyntaxUID option (`syntax`). The decoder and the instance keys read a file alike so
 * (inference/dicom/dataset.ts, dicom-node/instance-keys.ts): read otherwise, its keys were none while /predict
 * classified it.
 */
export function dicomParserInput (bytes: Buffer, limit = PART10_HEAD.length + bytes.length): { part10: Buffer, syntax: { TransferSyntaxUID?: string } } {
  const raw = rawDataSet(bytes)
  if (raw?.kind === 'meta') return { part10: Buffer.concat([PART10_HEAD, bytes.subarray(0, limit - PART10_HEAD.length)]), syntax: {} }
  return { part10: bytes.subarray(0, limit), syntax: raw?.kind === 'dataset' ? { TransferSyntaxUID: raw.transferSyntaxUid } : {} }
}
