import dicomParser from 'dicom-parser'
import { ImageTooLargeError, ServiceError } from '../errors.js'
import { CorruptDicomError, DicomTooLargeError, MultiFrameDicomError, TooManyFramesError, UnsupportedDicomImageError } from './errors.js'
import { inflateWithinBudget } from './inflate.js'

/**
 * The instance identifiers echoed to callers so results can be matched back to PACS. Patient name, ID and
 * birth date are deliberately never read from the file, so they cannot reach a response, a log or a file name.
 */
export interface DicomIdentifiers {
  studyInstanceUid?: string
  seriesInstanceUid?: string
  sopInstanceUid?: string
}

/** Where an instance sits in its series, so a series' results can be ordered by slice. */
export interface SlicePlacement {
  /** InstanceNumber (0020,0013). */
  instanceNumber?: number
  /**
   * Position of the slice along its normal, in mm: ImagePositionPatient (0020,0032) projected on the cross product of
   * the ImageOrientationPatient (0020,0037) row and column directions; SliceLocation (0020,1041) when those are absent.
   */
  slicePosition?: number
}

/** An instance's identifiers and its place in its series, from the one parse that decoded it. */
export interface DicomInstance extends SlicePlacement {
  identifiers: DicomIdentifiers
}

export interface DicomWindow {
  center: number
  width: number
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
  rescaleSlope: number
  rescaleIntercept: number
  /** First WindowCenter/WindowWidth pair of the file, when both are present and the width is at least 1. */
  window?: DicomWindow
  voiLutFunction: string
  identifiers: DicomIdentifiers
  placement: SlicePlacement
}

export interface ParsedDicom {
  header: DicomImageHeader
  dataSet: dicomParser.DataSet
  pixelData: dicomParser.Element
}

const TAG = {
  transferSyntaxUid: 'x00020010',
  sopInstanceUid: 'x00080018',
  instanceNumber: 'x00200013',
  imagePosition: 'x00200032',
  imageOrientation: 'x00200037',
  sliceLocation: 'x00201041',
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
  windowCenter: 'x00281050',
  windowWidth: 'x00281051',
  rescaleIntercept: 'x00281052',
  rescaleSlope: 'x00281053',
  voiLutFunction: 'x00281056',
  pixelData: 'x7fe00010'
} as const

/** The most a single upload's decoding may produce, known before it starts. */
export interface DicomLimits {
  /** Rows x Columns of one frame. */
  maxPixels: number
  /** Frames of one object; 1 refuses multi-frame objects as MULTI_FRAME_DICOM. */
  maxFrames: number
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
  try {
    return dicomParser.parseDicom(bytes, {
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

function fileWindow (dataSet: dicomParser.DataSet): DicomWindow | undefined {
  const center = dataSet.floatString(TAG.windowCenter, 0)
  const width = dataSet.floatString(TAG.windowWidth, 0)
  if (center === undefined || width === undefined || !Number.isFinite(center) || !(width >= 1)) return undefined
  return { center, width }
}

function finite (value: number | undefined): number | undefined {
  return value !== undefined && Number.isFinite(value) ? value : undefined
}

function slicePlacement (dataSet: dicomParser.DataSet): SlicePlacement {
  const values = (tag: string, count: number): number[] | undefined => {
    const list = Array.from({ length: count }, (_, i) => dataSet.floatString(tag, i))
    return list.every((v) => v !== undefined && Number.isFinite(v)) ? list as number[] : undefined
  }
  const position = values(TAG.imagePosition, 3)
  const orientation = values(TAG.imageOrientation, 6)
  let slicePosition = finite(dataSet.floatString(TAG.sliceLocation))
  if (position !== undefined && orientation !== undefined) {
    const [rx, ry, rz, cx, cy, cz] = orientation
    const normal = [ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx]
    slicePosition = position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2]
  }
  const instanceNumber = finite(dataSet.intString(TAG.instanceNumber))
  return {
    ...(instanceNumber === undefined ? {} : { instanceNumber }),
    ...(slicePosition === undefined ? {} : { slicePosition })
  }
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
    frames: dataSet.intString(TAG.numberOfFrames) ?? 1,
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
}

/** Parses a Part 10 file once and reads the attributes of its image; throws typed errors for anything unusable. */
export function parseDicomImage (bytes: Buffer, limits: DicomLimits): ParsedDicom {
  const dataSet = parse(bytes, limits)
  const pixelData = dataSet.elements[TAG.pixelData]
  if (pixelData === undefined) throw new UnsupportedDicomImageError('the object has no Pixel Data (7FE0,0010)')

  const slope = dataSet.floatString(TAG.rescaleSlope)
  const intercept = dataSet.floatString(TAG.rescaleIntercept)
  const geometry = readGeometry(dataSet)
  const bitsStored = dataSet.uint16(TAG.bitsStored) ?? geometry.bitsAllocated
  const header: DicomImageHeader = {
    ...geometry,
    transferSyntaxUid: optionalString(dataSet, TAG.transferSyntaxUid) ?? '1.2.840.10008.1.2',
    photometricInterpretation: optionalString(dataSet, TAG.photometricInterpretation) ?? 'MONOCHROME2',
    bitsStored,
    highBit: dataSet.uint16(TAG.highBit) ?? bitsStored - 1,
    signed: dataSet.uint16(TAG.pixelRepresentation) === 1,
    rescaleSlope: slope !== undefined && Number.isFinite(slope) && slope !== 0 ? slope : 1,
    rescaleIntercept: intercept !== undefined && Number.isFinite(intercept) ? intercept : 0,
    window: fileWindow(dataSet),
    voiLutFunction: optionalString(dataSet, TAG.voiLutFunction) ?? 'LINEAR',
    identifiers: {
      studyInstanceUid: optionalString(dataSet, TAG.studyInstanceUid),
      seriesInstanceUid: optionalString(dataSet, TAG.seriesInstanceUid),
      sopInstanceUid: optionalString(dataSet, TAG.sopInstanceUid)
    },
    placement: slicePlacement(dataSet)
  }
  checkLimits(header, limits)
  checkSupportedImage(header)
  return { header, dataSet, pixelData }
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
