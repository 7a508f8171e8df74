import type { DecodedImage, DecodeOptions } from '../decode.js'
import { ImageTooLargeError } from '../errors.js'
import { MultiFrameDicomError, TooManyFramesError } from './errors.js'
import { parseDicomImage, type DicomIdentifiers, type DicomWindow, type ParsedDicom } from './dataset.js'
import { assertSupportedTransferSyntax, readStoredValues } from './pixel-data.js'
import { ABDOMEN_WINDOW, applyWindow, toModalityValues, type VoiFunction } from './voi.js'

/** Frames decoded from one object at most: a few kilobytes of JPEG-LS can otherwise expand to gigabytes. */
export const DEFAULT_MAX_FRAMES = 1000

export interface DicomDecodeOptions extends DecodeOptions {
  maxFrames?: number
  /** Used when the file has no usable WindowCenter/WindowWidth; defaults to ABDOMEN_WINDOW. */
  defaultWindow?: DicomWindow
}

export interface AppliedWindow extends DicomWindow {
  source: 'file' | 'default'
}

export interface DecodedDicom {
  /** One 8-bit image per frame, in frame order. */
  frames: DecodedImage[]
  identifiers: DicomIdentifiers
  transferSyntaxUid: string
  window: AppliedWindow
}

export interface ModalityFrames {
  width: number
  height: number
  /** Modality LUT output per frame (Hounsfield units for CT), row-major. */
  frames: Float64Array[]
}

function parseChecked (bytes: Buffer, maxPixels: number, maxFrames = DEFAULT_MAX_FRAMES): ParsedDicom {
  const parsed = parseDicomImage(bytes)
  const { columns, rows, frames, transferSyntaxUid } = parsed.header
  assertSupportedTransferSyntax(transferSyntaxUid)
  if (columns * rows > maxPixels) throw new ImageTooLargeError(columns, rows, maxPixels)
  if (frames > maxFrames) throw new TooManyFramesError(frames, maxFrames)
  return parsed
}

async function readModalityFrame (parsed: ParsedDicom, frame: number): Promise<Float64Array> {
  const { rescaleSlope, rescaleIntercept } = parsed.header
  return toModalityValues(await readStoredValues(parsed, frame), rescaleSlope, rescaleIntercept)
}

/** Modality values (HU) of every frame, before any window: what the HU tests compare with an independent reader. */
export async function readModalityFrames (bytes: Buffer, maxPixels: number): Promise<ModalityFrames> {
  const parsed = parseChecked(bytes, maxPixels)
  const frames: Float64Array[] = []
  for (let frame = 0; frame < parsed.header.frames; frame++) frames.push(await readModalityFrame(parsed, frame))
  return { width: parsed.header.columns, height: parsed.header.rows, frames }
}

function voiFunction (name: string): VoiFunction {
  return name === 'SIGMOID' || name === 'LINEAR_EXACT' ? name : 'LINEAR'
}

function greyToChannels (grey: Buffer, channels: 1 | 3): Buffer {
  if (channels === 1) return grey
  const out = Buffer.allocUnsafe(grey.length * 3)
  for (let i = 0; i < grey.length; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = grey[i]
  return out
}

/**
 * DICOM Part 10 bytes -> the same 8-bit images `decodeImage` gives for JPEG/PNG: stored values -> Modality
 * LUT (HU) -> window (the file's, else `defaultWindow`) -> grey, replicated to 3 channels when asked.
 */
export async function decodeDicom (bytes: Buffer, options: DicomDecodeOptions): Promise<DecodedDicom> {
  return await decodeFrames(parseChecked(bytes, options.maxPixels, options.maxFrames), options)
}

/** The one image of a single-frame object (what /predict classifies); multi-frame objects are refused before decoding. */
export async function decodeDicomSlice (bytes: Buffer, options: DicomDecodeOptions): Promise<DecodedImage> {
  const parsed = parseChecked(bytes, options.maxPixels, options.maxFrames)
  if (parsed.header.frames > 1) throw new MultiFrameDicomError(parsed.header.frames)
  return (await decodeFrames(parsed, options)).frames[0]
}

/** StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID, read from the header only. */
export function readDicomIdentifiers (bytes: Buffer): DicomIdentifiers {
  return parseDicomImage(bytes).header.identifiers
}

/** An instance's identifiers and where it sits in its series, so a series' results can be ordered by slice. */
export interface DicomInstance {
  identifiers: DicomIdentifiers
  /** InstanceNumber (0020,0013). */
  instanceNumber?: number
  /**
   * Position of the slice along its normal, in mm: ImagePositionPatient (0020,0032) projected on the cross product of
   * the ImageOrientationPatient (0020,0037) row and column directions; SliceLocation (0020,1041) when those are absent.
   */
  slicePosition?: number
}

const INSTANCE_TAG = { instanceNumber: 'x00200013', imagePosition: 'x00200032', imageOrientation: 'x00200037', sliceLocation: 'x00201041' }

/** `readDicomIdentifiers` plus the instance's place in its series, from the same single header parse. */
export function readDicomInstance (bytes: Buffer): DicomInstance {
  const { header, dataSet } = parseDicomImage(bytes)
  const finite = (value: number | undefined): number | undefined => value !== undefined && Number.isFinite(value) ? value : undefined
  const values = (tag: string, count: number): number[] | undefined => {
    const list = Array.from({ length: count }, (_, i) => dataSet.floatString(tag, i))
    return list.every((v) => v !== undefined && Number.isFinite(v)) ? list as number[] : undefined
  }
  const position = values(INSTANCE_TAG.imagePosition, 3)
  const orientation = values(INSTANCE_TAG.imageOrientation, 6)
  let slicePosition = finite(dataSet.floatString(INSTANCE_TAG.sliceLocation))
  if (position !== undefined && orientation !== undefined) {
    const [rx, ry, rz, cx, cy, cz] = orientation
    const normal = [ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx]
    slicePosition = position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2]
  }
  const instanceNumber = finite(dataSet.intString(INSTANCE_TAG.instanceNumber))
  return {
    identifiers: header.identifiers,
    ...(instanceNumber === undefined ? {} : { instanceNumber }),
    ...(slicePosition === undefined ? {} : { slicePosition })
  }
}

async function decodeFrames (parsed: ParsedDicom, options: DicomDecodeOptions): Promise<DecodedDicom> {
  const { header } = parsed
  // The VOI LUT Function only qualifies the file's own window; the default is always the linear function.
  const window: AppliedWindow = header.window !== undefined
    ? { ...header.window, source: 'file' }
    : { ...(options.defaultWindow ?? ABDOMEN_WINDOW), source: 'default' }
  const fn = window.source === 'file' ? voiFunction(header.voiLutFunction) : 'LINEAR'
  const invert = header.photometricInterpretation === 'MONOCHROME1'

  const frames: DecodedImage[] = []
  for (let frame = 0; frame < header.frames; frame++) {
    const grey = applyWindow(await readModalityFrame(parsed, frame), window, fn, invert)
    frames.push({ pixels: greyToChannels(grey, options.channels), width: header.columns, height: header.rows, channels: options.channels })
  }
  return { frames, identifiers: header.identifiers, transferSyntaxUid: header.transferSyntaxUid, window }
}
