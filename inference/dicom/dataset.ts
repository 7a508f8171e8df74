import dicomParser from 'dicom-parser'
import { ImageTooLargeError, ServiceError } from '../errors.js'
import { acquisitionDateTime } from './acquisition-time.js'
import { CorruptDicomError, DicomTooLargeError, MultiFrameDicomError, NoPixelDataError, TooManyFramesError, UnsupportedDicomImageError } from './errors.js'
import { readFrameAttributes, type FrameAttributes, type SlicePlacement } from './frame-attributes.js'
import { inflateWithinBudget } from './inflate.js'
import { dicomParserInput } from '../sniff.js'

export type { DicomWindow, FrameAttributes, SlicePlacement } from './frame-attributes.js'

/**
 * The instance identifiers echoed to callers so results can be matched back to PACS. Patient name, ID and
 * birth date are deliberately never read from the file, so they cannot reach a response, a log or a file name.
 */
export interface DicomIdentifiers {
  studyInstanceUid?: string
  seriesInstanceUid?: string
  sopInstanceUid?: string
}

/** An instance's identifiers and its place in its series, from the one parse that decoded it. */
export interface DicomInstance extends SlicePlacement {
  identifiers: DicomIdentifiers
  /** When it was acquired, as a FHIR dateTime (acquisition-time.ts): for reports, never echoed in the JSON answer. */
  acquired?: string
}

/** The Image Pixel, Modality LUT and VOI LUT attributes the pixel pipeline needs (PS3.3 C.7.6.3, C.11). */
export interface DicomImageHeader {
  transferSyntaxUid: string
  rows: number
  columns: number
  frames: number
  samplesPerPixel: number
  photometricInterpretation: string
  bitsAllocated: number
  bitsStored: number
  highBit: number
  signed: boolean
  /** Modality (0008,0060), upper case. */
  modality?: string
  /** SOPClassUID (0008,0016), else MediaStorageSOPClassUID (0002,0002). */
  sopClassUid?: string
  /** ImageType (0008,0008), its values upper case (e.g. ORIGINAL, PRIMARY, AXIAL); empty when absent. */
  imageType: string[]
  /** Pixel Padding Value (0028,0120) and Range Limit (0028,0121), as their 16-bit patterns (US or SS alike). */
  pixelPadding?: PixelPadding
  /** Rescale, window and slice position of every frame (functional groups of enhanced objects, frame-attributes.ts). */
  frameAttributes: FrameAttributes[]
  voiLutFunction: string
  identifiers: DicomIdentifiers
  /** The first frame's place (a single-frame object's). */
  placement: SlicePlacement
  acquired?: string
}

export interface PixelPadding {
  value: number
  rangeLimit?: number
}

export interface ParsedDicom {
  header: DicomImageHeader
  dataSet: dicomParser.DataSet
  pixelData: dicomParser.Element
}

const TAG = {
  mediaStorageSopClassUid: 'x00020002',
  transferSyntaxUid: 'x00020010',
  sopClassUid: 'x00080016',
  modality: 'x00080060',
  imageType: 'x00080008',
  sopInstanceUid: 'x00080018',
  instanceNumber: 'x00200013',
  studyInstanceUid: 'x0020000d',
  seriesInstanceUid: 'x0020000e',
  samplesPerPixel: 'x00280002',
  photometricInterpretation: 'x00280004',
  numberOfFrames: 'x00280008',
  rows: 'x00280010',
  columns: 'x00280011',
  bitsAllocated: 'x00280100',
  bitsStored: 'x00280101',
  highBit: 'x00280102',
  pixelRepresentation: 'x00280103',
  voiLutFunction: 'x00281056',
  pixelPaddingValue: 'x00280120',
  pixelPaddingRangeLimit: 'x00280121',
  pixelData: 'x7fe00010'
} as const

/** The most a single upload's decoding may produce, known before it starts. */
export interface DicomLimits {
  /** Rows x Columns of one frame. */
  maxPixels: number
  /** Frames of one object; 1 refuses multi-frame objects as MULTI_FRAME_DICOM. */
  maxFrames: number
  /** Rows x Columns x frames of a multi-frame object: its decoded frames must fit where they are decoded. */
  maxTotalPixels?: number
}

/** What a deflated data set may inflate to before its Pixel Data: real CT headers take a few to a few hundred kB. */
export const MAX_HEADER_BYTES = 8 * 1024 * 1024
/** Elements after the Pixel Data (padding, signatures) a deflated data set may still carry. */
const MAX_TRAILER_BYTES = 1024 * 1024

/**
 * The one parse of an upload. dicom-parser reads the data set; a deflated one is inflated here first, within the
 * budget (inflate.ts): at most MAX_HEADER_BYTES until the Pixel Data element, then no more than its header says.
 */
function parse (bytes: Buffer, limits: DicomLimits): dicomParser.DataSet {
  const { part10, syntax } = dicomParserInput(bytes)
  try {
    return dicomParser.parseDicom(part10, {
      ...syntax,
      inflater: (part10: Uint8Array, position: number) => Buffer.concat([part10.subarray(0, position), ...inflateWithinBudget(part10.subarray(position), {
        beforePixelData: MAX_HEADER_BYTES,
        fromHeader: (prefix) => inflatedSizeFromHeader(prefix, limits)
      })])
    })
  } catch (error) {
    throw asDicomError(error)
  }
}

/**
 * dicom-parser throws strings, Errors, or `{ exception, dataSet }` wrappers, with its own wording; a data set nested
 * deeper than the stack allows ends in a RangeError. Callers get our typed errors and words only.
 */
function asDicomError (error: unknown): ServiceError {
  const cause = typeof error === 'object' && error !== null && 'exception' in error ? (error as { exception: unknown }).exception : error
  if (cause instanceof ServiceError) return cause
  if (cause instanceof RangeError) return new CorruptDicomError('its sequences are nested too deeply or its lengths are inconsistent')
  return new CorruptDicomError('its data set is truncated or malformed')
}

/**
 * An inflated prefix of a deflated data set (explicit VR little endian): once it holds the Pixel Data element, the
 * most the whole data set may inflate to. The image attributes before it are checked against the limits first.
 */
function inflatedSizeFromHeader (prefix: Buffer, limits: DicomLimits): number | undefined {
  const parser = dicomParser.littleEndianByteArrayParser
  const DataSet = (dicomParser as unknown as { DataSet: new (parser: unknown, bytes: Uint8Array, elements: object) => dicomParser.DataSet }).DataSet
  const dataSet = new DataSet(parser, prefix, {})
  try {
    dicomParser.parseDicomDataSetExplicit(dataSet, new dicomParser.ByteStream(parser, prefix, 0), prefix.length, { untilTag: TAG.pixelData })
  } catch {
    // the prefix ends inside an element: more must be inflated
  }
  const pixelData = dataSet.elements[TAG.pixelData]
  if (pixelData === undefined) return undefined
  const geometry = readGeometry(dataSet)
  checkLimits(geometry, limits)
  const expected = geometry.rows * geometry.columns * geometry.samplesPerPixel * (geometry.bitsAllocated / 8) * geometry.frames
  // odd lengths are padded to even; a deflated data set has native (never encapsulated) pixels of a defined length
  if (pixelData.hadUndefinedLength === true || pixelData.length > expected + 1) {
    throw new DicomTooLargeError(`its Pixel Data is longer than the ${expected} bytes its header accounts for`)
  }
  return pixelData.dataOffset + pixelData.length + MAX_TRAILER_BYTES
}

function requiredUint16 (dataSet: dicomParser.DataSet, tag: string, name: string): number {
  const value = dataSet.uint16(tag)
  if (value === undefined) throw new CorruptDicomError(`${name} ${tagLabel(tag)} is missing`)
  return value
}

function tagLabel (tag: string): string {
  return `(${tag.slice(1, 5).toUpperCase()},${tag.slice(5).toUpperCase()})`
}

function optionalString (dataSet: dicomParser.DataSet, tag: string): string | undefined {
  const value = dataSet.string(tag)?.replace(/\0/g, '').trim()
  return value === undefined || value === '' ? undefined : value
}

/** A DICOM UID (PS3.5 9.1): numbers joined by dots, at most 64 characters. */
export function isDicomUid (value: string): boolean {
  return value.length <= 64 && /^[0-9]+(\.[0-9]+)*$/.test(value)
}

/**
 * A UID of the data set, or undefined when it is none: a value that is not a UID would be recorded under a study no
 * query can name (GET /studies and ?studyInstanceUid= take UIDs only) and would make an invalid `urn:oid:` in FHIR.
 */
function optionalUid (dataSet: dicomParser.DataSet, tag: string): string | undefined {
  const value = optionalString(dataSet, tag)
  return value !== undefined && isDicomUid(value) ? value : undefined
}

/**
 * NumberOfFrames (IS: an optional sign and digits), 1 when absent. Read as parseInt reads it, `1e2` was 1 frame and
 * `2.5` 2: an object of 100 frames classified as its first alone. Anything but an integer is refused as corrupt.
 */
function numberOfFrames (dataSet: dicomParser.DataSet): number {
  const value = optionalString(dataSet, TAG.numberOfFrames)
  if (value === undefined) return 1
  if (!/^[+-]?[0-9]+$/.test(value)) throw new CorruptDicomError('its NumberOfFrames is not a whole number')
  return Number(value)
}

interface ImageGeometry {
  rows: number
  columns: number
  frames: number
  samplesPerPixel: number
  bitsAllocated: number
}

function readGeometry (dataSet: dicomParser.DataSet): ImageGeometry {
  return {
    rows: requiredUint16(dataSet, TAG.rows, 'Rows'),
    columns: requiredUint16(dataSet, TAG.columns, 'Columns'),
    frames: numberOfFrames(dataSet),
    samplesPerPixel: dataSet.uint16(TAG.samplesPerPixel) ?? 1,
    bitsAllocated: requiredUint16(dataSet, TAG.bitsAllocated, 'BitsAllocated')
  }
}

/** The pixel budget, from the header, before any pixel is read or decoded. */
function checkLimits ({ rows, columns, frames, bitsAllocated }: ImageGeometry, limits: DicomLimits): void {
  if (rows === 0 || columns === 0 || !(frames >= 1)) throw new CorruptDicomError(`image size ${columns}x${rows}, ${frames} frame(s)`)
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    throw new UnsupportedDicomImageError(`BitsAllocated ${bitsAllocated}; only 8 and 16 are read`)
  }
  if (columns * rows > limits.maxPixels) throw new ImageTooLargeError(columns, rows, limits.maxPixels)
  if (frames > limits.maxFrames) throw limits.maxFrames === 1 ? new MultiFrameDicomError(frames) : new TooManyFramesError(frames, limits.maxFrames)
  if (frames > 1 && limits.maxTotalPixels !== undefined && columns * rows * frames > limits.maxTotalPixels) {
    throw new DicomTooLargeError(`its ${frames} frames of ${columns}x${rows} would decode to more than the ${limits.maxTotalPixels} pixels a decoder may hold`)
  }
}

/** Parses a Part 10 file once and reads the attributes of its image; throws typed errors for anything unusable. */
export function parseDicomImage (bytes: Buffer, limits: DicomLimits): ParsedDicom {
  const dataSet = parse(bytes, limits)
  const pixelData = dataSet.elements[TAG.pixelData]
  if (pixelData === undefined) throw new NoPixelDataError()

  const geometry = readGeometry(dataSet)
  checkLimits(geometry, limits)
  const bitsStored = dataSet.uint16(TAG.bitsStored) ?? geometry.bitsAllocated
  const frameAttributes = readFrameAttributes(dataSet, geometry.frames)
  const instanceNumber = dataSet.intString(TAG.instanceNumber)
  const slicePosition = frameAttributes[0].slicePosition
  const acquired = acquisitionDateTime(dataSet)
  const paddingValue = dataSet.uint16(TAG.pixelPaddingValue)
  const paddingLimit = dataSet.uint16(TAG.pixelPaddingRangeLimit)
  const header: DicomImageHeader = {
    ...geometry,
    transferSyntaxUid: optionalString(dataSet, TAG.transferSyntaxUid) ?? '1.2.840.10008.1.2',
    photometricInterpretation: optionalString(dataSet, TAG.photometricInterpretation) ?? 'MONOCHROME2',
    bitsStored,
    highBit: dataSet.uint16(TAG.highBit) ?? bitsStored - 1,
    signed: dataSet.uint16(TAG.pixelRepresentation) === 1,
    modality: optionalString(dataSet, TAG.modality)?.toUpperCase(),
    sopClassUid: optionalString(dataSet, TAG.sopClassUid) ?? optionalString(dataSet, TAG.mediaStorageSopClassUid),
    imageType: optionalString(dataSet, TAG.imageType)?.toUpperCase().split('\\').map((value) => value.trim()) ?? [],
    frameAttributes,
    voiLutFunction: optionalString(dataSet, TAG.voiLutFunction) ?? 'LINEAR',
    identifiers: {
      studyInstanceUid: optionalUid(dataSet, TAG.studyInstanceUid),
      seriesInstanceUid: optionalUid(dataSet, TAG.seriesInstanceUid),
      sopInstanceUid: optionalUid(dataSet, TAG.sopInstanceUid)
    },
    placement: {
      ...(isInstanceNumber(instanceNumber) ? { instanceNumber } : {}),
      ...(slicePosition === undefined ? {} : { slicePosition })
    },
    ...(acquired === undefined ? {} : { acquired }),
    ...(paddingValue === undefined ? {} : { pixelPadding: { value: paddingValue, ...(paddingLimit === undefined ? {} : { rangeLimit: paddingLimit }) } })
  }
  checkSupportedImage(header)
  return { header, dataSet, pixelData }
}

/**
 * An IS value is a 32-bit signed integer (PS3.5 6.2): beyond that range the file is wrong, and the number could not
 * be recorded (the records column is a PostgreSQL integer). Such a number is left out, like an unreadable one.
 */
function isInstanceNumber (value: number | undefined): value is number {
  return value !== undefined && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31
}

function checkSupportedImage (header: DicomImageHeader): void {
  const { samplesPerPixel, photometricInterpretation, bitsAllocated, bitsStored, highBit } = header
  if (samplesPerPixel !== 1 || !['MONOCHROME1', 'MONOCHROME2'].includes(photometricInterpretation)) {
    throw new UnsupportedDicomImageError(
      `PhotometricInterpretation ${photometricInterpretation} with ${samplesPerPixel} sample(s) per pixel; only MONOCHROME1/MONOCHROME2 greyscale is read`)
  }
  if (bitsStored < 1 || bitsStored > bitsAllocated || highBit >= bitsAllocated || highBit + 1 < bitsStored) {
    throw new CorruptDicomError(`BitsStored ${bitsStored} / HighBit ${highBit} do not fit BitsAllocated ${bitsAllocated}`)
  }
}
