import dicomParser from 'dicom-parser'
import { CorruptDicomError, UnsupportedDicomImageError } from './errors.js'

/**
 * The instance identifiers echoed to callers so results can be matched back to PACS. Patient name, ID and
 * birth date are deliberately never read from the file, so they cannot reach a response, a log or a file name.
 */
export interface DicomIdentifiers {
  studyInstanceUid?: string
  seriesInstanceUid?: string
  sopInstanceUid?: string
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
}

export interface ParsedDicom {
  header: DicomImageHeader
  dataSet: dicomParser.DataSet
  pixelData: dicomParser.Element
}

const TAG = {
  transferSyntaxUid: 'x00020010',
  sopInstanceUid: 'x00080018',
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

function parse (bytes: Buffer): dicomParser.DataSet {
  try {
    // A Buffer, not a bare Uint8Array: dicom-parser inflates deflated data sets with Buffer methods on Node.
    return dicomParser.parseDicom(bytes)
  } catch (error) {
    // dicom-parser throws strings (sometimes with a partial data set attached), not Error objects.
    const detail = typeof error === 'string' ? error : (error as { exception?: string, message?: string }).exception ?? (error as Error).message
    throw new CorruptDicomError(String(detail).replace(/^dicomParser\.\w+: /, ''))
  }
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

/** Parses a Part 10 file and reads the attributes of its image; throws typed errors for anything unusable. */
export function parseDicomImage (bytes: Buffer): ParsedDicom {
  const dataSet = parse(bytes)
  const pixelData = dataSet.elements[TAG.pixelData]
  if (pixelData === undefined) throw new UnsupportedDicomImageError('the object has no Pixel Data (7FE0,0010)')

  const slope = dataSet.floatString(TAG.rescaleSlope)
  const intercept = dataSet.floatString(TAG.rescaleIntercept)
  const bitsAllocated = requiredUint16(dataSet, TAG.bitsAllocated, 'BitsAllocated')
  const bitsStored = dataSet.uint16(TAG.bitsStored) ?? bitsAllocated
  const header: DicomImageHeader = {
    transferSyntaxUid: optionalString(dataSet, TAG.transferSyntaxUid) ?? '1.2.840.10008.1.2',
    rows: requiredUint16(dataSet, TAG.rows, 'Rows'),
    columns: requiredUint16(dataSet, TAG.columns, 'Columns'),
    frames: dataSet.intString(TAG.numberOfFrames) ?? 1,
    samplesPerPixel: dataSet.uint16(TAG.samplesPerPixel) ?? 1,
    photometricInterpretation: optionalString(dataSet, TAG.photometricInterpretation) ?? 'MONOCHROME2',
    bitsAllocated,
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
    }
  }
  checkSupportedImage(header)
  return { header, dataSet, pixelData }
}

function checkSupportedImage (header: DicomImageHeader): void {
  const { rows, columns, frames, samplesPerPixel, photometricInterpretation, bitsAllocated, bitsStored, highBit } = header
  if (rows === 0 || columns === 0 || !(frames >= 1)) throw new CorruptDicomError(`image size ${columns}x${rows}, ${frames} frame(s)`)
  if (samplesPerPixel !== 1 || !['MONOCHROME1', 'MONOCHROME2'].includes(photometricInterpretation)) {
    throw new UnsupportedDicomImageError(
      `PhotometricInterpretation ${photometricInterpretation} with ${samplesPerPixel} sample(s) per pixel; only MONOCHROME1/MONOCHROME2 greyscale is read`)
  }
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    throw new UnsupportedDicomImageError(`BitsAllocated ${bitsAllocated}; only 8 and 16 are read`)
  }
  if (bitsStored < 1 || bitsStored > bitsAllocated || highBit >= bitsAllocated || highBit + 1 < bitsStored) {
    throw new CorruptDicomError(`BitsStored ${bitsStored} / HighBit ${highBit} do not fit BitsAllocated ${bitsAllocated}`)
  }
}
