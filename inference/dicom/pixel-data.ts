import dicomParser from 'dicom-parser'
import type { DicomImageHeader, ParsedDicom } from './dataset.js'
import { CorruptDicomError, UnsupportedTransferSyntaxError } from './errors.js'
import { decodeEncapsulatedFrame, isEncapsulatedSyntax } from './codecs.js'

const NATIVE_LITTLE_ENDIAN = new Set([
  '1.2.840.10008.1.2', // implicit VR little endian
  '1.2.840.10008.1.2.1', // explicit VR little endian
  '1.2.840.10008.1.2.1.99' // deflated explicit VR little endian (inflated within its budget by dataset.ts)
])
const EXPLICIT_BIG_ENDIAN = '1.2.840.10008.1.2.2'

/** Names for the 415 message, so a PACS administrator can tell which export setting to change. */
const UNSUPPORTED_NAMES: Record<string, string> = {
  '1.2.840.10008.1.2.4.51': 'JPEG Extended (12-bit)',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.202': 'HTJ2K Lossless RPCL',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.4.100': 'MPEG2',
  '1.2.840.10008.1.2.4.102': 'MPEG-4 AVC/H.264'
}

export function isSupportedTransferSyntax (uid: string): boolean {
  return NATIVE_LITTLE_ENDIAN.has(uid) || uid === EXPLICIT_BIG_ENDIAN || isEncapsulatedSyntax(uid)
}

export function assertSupportedTransferSyntax (uid: string): void {
  if (!isSupportedTransferSyntax(uid)) throw new UnsupportedTransferSyntaxError(uid, UNSUPPORTED_NAMES[uid])
}

/** One frame's samples as stored: 8- or 16-bit words, before BitsStored/HighBit masking. */
export interface FrameSamples {
  view: DataView
  bitsAllocated: 8 | 16
  littleEndian: boolean
  count: number
}

/** The words of one frame: a view into the data set, or the output of its codec (compressed syntaxes). */
export async function readFrameSamples ({ header, dataSet, pixelData }: ParsedDicom, frame: number, maxPixels: number): Promise<FrameSamples> {
  assertSupportedTransferSyntax(header.transferSyntaxUid)
  if (isEncapsulatedSyntax(header.transferSyntaxUid)) return await readEncapsulatedFrame(header, dataSet, pixelData, frame, maxPixels)

  const bytesPerSample = header.bitsAllocated / 8
  const count = header.rows * header.columns
  const frameBytes = count * bytesPerSample
  const start = pixelData.dataOffset + frame * frameBytes
  if (pixelData.encapsulatedPixelData === true || start + frameBytes > dataSet.byteArray.length ||
      (frame + 1) * frameBytes > pixelData.length) {
    throw new CorruptDicomError(`Pixel Data is shorter than ${header.frames} frame(s) of ${header.columns}x${header.rows}x${header.bitsAllocated} bits`)
  }
  const view = new DataView(dataSet.byteArray.buffer, dataSet.byteArray.byteOffset + start, frameBytes)
  return { view, bitsAllocated: header.bitsAllocated as 8 | 16, littleEndian: header.transferSyntaxUid !== EXPLICIT_BIG_ENDIAN, count }
}

async function readEncapsulatedFrame (header: DicomImageHeader, dataSet: dicomParser.DataSet, pixelData: dicomParser.Element, frame: number, maxPixels: number): Promise<FrameSamples> {
  const fragments = pixelData.fragments ?? []
  if (pixelData.encapsulatedPixelData !== true || fragments.length === 0) throw new CorruptDicomError('compressed Pixel Data is not encapsulated')
  let encoded: Uint8Array
  try {
    if (header.frames === 1) {
      encoded = dicomParser.readEncapsulatedPixelDataFromFragments(dataSet, pixelData, 0, fragments.length)
    } else if ((pixelData.basicOffsetTable ?? []).length > 0 || fragments.length === header.frames) {
      encoded = dicomParser.readEncapsulatedImageFrame(dataSet, pixelData, frame)
    } else {
      encoded = dicomParser.readEncapsulatedImageFrame(dataSet, pixelData, frame, dicomParser.createJPEGBasicOffsetTable(dataSet, pixelData))
    }
  } catch {
    throw new CorruptDicomError(`frame ${frame + 1} of the encapsulated Pixel Data cannot be located`)
  }
  const decoded = await decodeEncapsulatedFrame(header.transferSyntaxUid, encoded, header, maxPixels)
  // The decoder's own report, checked again: its frame header passed the same test before decoding.
  if (decoded.width !== header.columns || decoded.height !== header.rows || decoded.components !== 1 || decoded.bitsPerSample > header.bitsAllocated) {
    throw new CorruptDicomError(`the compressed frame is ${decoded.width}x${decoded.height}x${decoded.components} at ${decoded.bitsPerSample} bits, the header says ${header.columns}x${header.rows}x1 at ${header.bitsAllocated}`)
  }
  const bytesPerSample = decoded.bitsPerSample <= 8 ? 1 : 2
  const count = header.rows * header.columns
  if (decoded.bytes.byteLength < count * bytesPerSample) throw new CorruptDicomError('the compressed frame is truncated')
  const view = new DataView(decoded.bytes.buffer, decoded.bytes.byteOffset, decoded.bytes.byteLength)
  return { view, bitsAllocated: bytesPerSample === 1 ? 8 : 16, littleEndian: true, count }
}

/** Where the stored value sits in a word: BitsStored bits ending at HighBit (PS3.5 8.1.1). */
export interface StoredValueBits {
  bitsStored: number
  highBit: number
  signed: boolean
}

/** The stored value of a masked code (0 .. 2^BitsStored - 1): two's-complement sign extension when signed. */
export function storedValueOf (code: number, { bitsStored, signed }: StoredValueBits): number {
  const signBit = 1 << (bitsStored - 1)
  return signed && (code & signBit) !== 0 ? code - (1 << bitsStored) : code
}

/**
 * Every sample's masked code through `table` (indexed by code, one entry per possible stored value): one pass,
 * one output byte per pixel, without an intermediate array of values.
 */
export function lookUpSamples (samples: FrameSamples, bits: StoredValueBits, table: Uint8Array): Buffer {
  const { view, bitsAllocated, littleEndian, count } = samples
  const shift = bits.highBit + 1 - bits.bitsStored
  const mask = (1 << bits.bitsStored) - 1
  const out = Buffer.allocUnsafe(count)
  if (bitsAllocated === 8) {
    for (let i = 0; i < count; i++) out[i] = table[(view.getUint8(i) >> shift) & mask]
  } else {
    for (let i = 0; i < count; i++) out[i] = table[(view.getUint16(i * 2, littleEndian) >> shift) & mask]
  }
  return out
}

/** Stored values of one frame (before the Modality LUT), row-major: what the HU tests compare. */
export function toStoredValues (samples: FrameSamples, bits: StoredValueBits): Int32Array {
  const { view, bitsAllocated, littleEndian, count } = samples
  const shift = bits.highBit + 1 - bits.bitsStored
  const mask = (1 << bits.bitsStored) - 1
  const values = new Int32Array(count)
  for (let i = 0; i < count; i++) {
    const raw = bitsAllocated === 8 ? view.getUint8(i) : view.getUint16(i * 2, littleEndian)
    values[i] = storedValueOf((raw >> shift) & mask, bits)
  }
  return values
}
