import { deflateRawSync } from 'node:zlib'
import sharp from 'sharp'

export const DEFLATED_EXPLICIT_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.99'

/**
 * Writes small explicit VR little endian Part 10 files for the cases the shared real files do not cover
 * (8-bit, unsigned, MONOCHROME1, a window in the file, multi-frame, RGB, compressed syntaxes). It carries
 * patient name, ID and birth date on purpose, so tests can check they never come back out.
 */
export interface SyntheticDicom {
  transferSyntaxUid?: string
  /** Modality (0008,0060); default CT, null leaves it out. */
  modality?: string | null
  /** SOPClassUID (0008,0016) and MediaStorageSOPClassUID; default CT Image Storage. */
  sopClassUid?: string
  rows: number
  columns: number
  frames?: number
  bitsAllocated: 8 | 16
  bitsStored?: number
  highBit?: number
  signed: boolean
  photometric?: string
  samplesPerPixel?: number
  /** RescaleSlope/RescaleIntercept: when either is given both are written, the other as the identity (1 or 0). */
  rescaleSlope?: number
  rescaleIntercept?: number
  window?: { center: number, width: number }
  voiLutFunction?: string
  /** Stored values, frame after frame, row-major; written as bitsAllocated-bit words. */
  values?: number[]
  /** Raw Pixel Data bytes, wrapped as one encapsulated fragment (for compressed transfer syntaxes). */
  encapsulatedFragment?: Buffer
  /** Encoded elements (explicit VR little endian, see `element`) written after the image attributes, before Pixel Data. */
  extraElements?: Buffer[]
}

export const SYNTHETIC_PATIENT = { name: 'DOE^JANE', id: 'PAT-0042', birthDate: '19700101' }
export const SYNTHETIC_UIDS = {
  studyInstanceUid: '1.2.826.0.1.3680043.8.498.1',
  seriesInstanceUid: '1.2.826.0.1.3680043.8.498.2',
  sopInstanceUid: '1.2.826.0.1.3680043.8.498.3'
}

const LONG_VRS = new Set(['OB', 'OW', 'SQ', 'UN', 'UT'])

export function element (group: number, elem: number, vr: string, value: Buffer): Buffer {
  const padded = value.length % 2 === 0 ? value : Buffer.concat([value, Buffer.from([vr === 'UI' || vr === 'OB' ? 0 : 0x20])])
  const long = LONG_VRS.has(vr)
  const head = Buffer.alloc(long ? 12 : 8)
  head.writeUInt16LE(group, 0)
  head.writeUInt16LE(elem, 2)
  head.write(vr, 4, 'latin1')
  if (long) head.writeUInt32LE(padded.length, 8)
  else head.writeUInt16LE(padded.length, 6)
  return Buffer.concat([head, padded])
}

/** A sequence of defined length whose items (defined length too) hold the given encoded elements. */
export function sequence (group: number, elem: number, items: Buffer[][]): Buffer {
  const encodedItems = items.map((elements) => {
    const body = Buffer.concat(elements)
    const head = Buffer.alloc(8)
    head.writeUInt16LE(0xfffe, 0); head.writeUInt16LE(0xe000, 2); head.writeUInt32LE(body.length, 4)
    return Buffer.concat([head, body])
  })
  return element(group, elem, 'SQ', Buffer.concat(encodedItems))
}

export const text = (value: string | number): Buffer => Buffer.from(String(value), 'latin1')
const us = (value: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(value); return b }

export function pixelData (spec: SyntheticDicom): Buffer {
  if (spec.encapsulatedFragment !== undefined) {
    const item = (payload: Buffer): Buffer => {
      const head = Buffer.alloc(8)
      head.writeUInt16LE(0xfffe, 0); head.writeUInt16LE(0xe000, 2); head.writeUInt32LE(payload.length, 4)
      return Buffer.concat([head, payload])
    }
    const head = Buffer.alloc(12)
    head.writeUInt16LE(0x7fe0, 0); head.writeUInt16LE(0x0010, 2); head.write('OB', 4, 'latin1'); head.writeUInt32LE(0xffffffff, 8)
    const delimiter = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])
    // Fragments have even length; a trailing zero after a codestream's end marker is ignored by decoders.
    const fragment = spec.encapsulatedFragment.length % 2 === 0 ? spec.encapsulatedFragment : Buffer.concat([spec.encapsulatedFragment, Buffer.alloc(1)])
    return Buffer.concat([head, item(Buffer.alloc(0)), item(fragment), delimiter])
  }
  const values = spec.values ?? []
  const bytes = Buffer.alloc(values.length * spec.bitsAllocated / 8)
  values.forEach((value, i) => {
    if (spec.bitsAllocated === 8) bytes.writeUInt8(value & 0xff, i)
    else bytes.writeUInt16LE(value & 0xffff, i * 2)
  })
  return element(0x7fe0, 0x0010, spec.bitsAllocated === 8 ? 'OB' : 'OW', bytes)
}

/** The preamble, DICM and the File Meta Information group (always explicit VR little endian, never deflated). */
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2'

export function part10Header (transferSyntax: string, sopClassUid = CT_IMAGE_STORAGE): Buffer {
  const metaBody = Buffer.concat([
    element(0x0002, 0x0001, 'OB', Buffer.from([0, 1])),
    element(0x0002, 0x0002, 'UI', text(sopClassUid)),
    element(0x0002, 0x0003, 'UI', text(SYNTHETIC_UIDS.sopInstanceUid)),
    element(0x0002, 0x0010, 'UI', text(transferSyntax))
  ])
  const groupLength = Buffer.alloc(4)
  groupLength.writeUInt32LE(metaBody.length)
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(0x0002, 0x0000, 'UL', groupLength), metaBody])
}

/** The data set (explicit VR little endian) before its Pixel Data element: the image attributes and identifiers. */
export function imageAttributes (spec: SyntheticDicom): Buffer {
  const bitsStored = spec.bitsStored ?? spec.bitsAllocated
  const optional: Buffer[] = []
  if (spec.window !== undefined) {
    optional.push(element(0x0028, 0x1050, 'DS', text(spec.window.center)), element(0x0028, 0x1051, 'DS', text(spec.window.width)))
  }
  // Slope and intercept come as a pair (CT: both Type 1, PS3.3 C.8.2.1); the one not given is written as the identity.
  if (spec.rescaleIntercept !== undefined || spec.rescaleSlope !== undefined) {
    optional.push(element(0x0028, 0x1052, 'DS', text(spec.rescaleIntercept ?? 0)), element(0x0028, 0x1053, 'DS', text(spec.rescaleSlope ?? 1)))
  }
  if (spec.voiLutFunction !== undefined) optional.push(element(0x0028, 0x1056, 'CS', text(spec.voiLutFunction)))
  const modality = spec.modality === undefined ? 'CT' : spec.modality
  return Buffer.concat([
    element(0x0008, 0x0016, 'UI', text(spec.sopClassUid ?? CT_IMAGE_STORAGE)),
    element(0x0008, 0x0018, 'UI', text(SYNTHETIC_UIDS.sopInstanceUid)),
    ...(modality === null ? [] : [element(0x0008, 0x0060, 'CS', text(modality))]),
    element(0x0010, 0x0010, 'PN', text(SYNTHETIC_PATIENT.name)),
    element(0x0010, 0x0020, 'LO', text(SYNTHETIC_PATIENT.id)),
    element(0x0010, 0x0030, 'DA', text(SYNTHETIC_PATIENT.birthDate)),
    element(0x0020, 0x000d, 'UI', text(SYNTHETIC_UIDS.studyInstanceUid)),
    element(0x0020, 0x000e, 'UI', text(SYNTHETIC_UIDS.seriesInstanceUid)),
    element(0x0028, 0x0002, 'US', us(spec.samplesPerPixel ?? 1)),
    element(0x0028, 0x0004, 'CS', text(spec.photometric ?? 'MONOCHROME2')),
    element(0x0028, 0x0008, 'IS', text(spec.frames ?? 1)),
    element(0x0028, 0x0010, 'US', us(spec.rows)),
    element(0x0028, 0x0011, 'US', us(spec.columns)),
    element(0x0028, 0x0100, 'US', us(spec.bitsAllocated)),
    element(0x0028, 0x0101, 'US', us(bitsStored)),
    element(0x0028, 0x0102, 'US', us(spec.highBit ?? bitsStored - 1)),
    element(0x0028, 0x0103, 'US', us(spec.signed ? 1 : 0)),
    ...optional,
    ...(spec.extraElements ?? [])
  ])
}

export function writeDicom (spec: SyntheticDicom): Buffer {
  const transferSyntax = spec.transferSyntaxUid ?? '1.2.840.10008.1.2.1'
  const dataSet = Buffer.concat([imageAttributes(spec), pixelData(spec)])
  return Buffer.concat([part10Header(transferSyntax, spec.sopClassUid), transferSyntax === DEFLATED_EXPLICIT_LITTLE_ENDIAN ? deflateRawSync(dataSet) : dataSet])
}

/**
 * A CT slice made from an exported image (a ct-kidney JPEG): its grey levels turned back into Hounsfield units
 * through the abdomen window the model's DICOM input is displayed with (centre 40, width 400), so that the service
 * windows it to the same picture. A series test needs slices the model calls Stone; the shared DICOM files are a
 * chest and a spine slice, whose answers move with every model.
 */
export async function ctSliceFromImage (image: Buffer, window = { center: 40, width: 400 }): Promise<Buffer> {
  const { data, info } = await sharp(image).greyscale().raw().toBuffer({ resolveWithObject: true })
  const low = window.center - window.width / 2
  return writeDicom({
    rows: info.height,
    columns: info.width,
    bitsAllocated: 16,
    signed: true,
    rescaleSlope: 1,
    rescaleIntercept: 0,
    values: [...data].map((grey) => Math.round(low + grey / 255 * window.width))
  })
}
