import type { DecodedImage, DecodeTarget } from '../image.js'
import { parseDicomImage, type DicomIdentifiers, type DicomInstance, type DicomLimits, type DicomWindow, type ParsedDicom } from './dataset.js'
import { lookUpSamples, readFrameSamples, toStoredValues } from './pixel-data.js'
import { ABDOMEN_WINDOW, toModalityValues, windowTable, type VoiFunction } from './voi.js'

/** Frames decoded from one object at most: a few kilobytes of JPEG-LS can otherwise expand to gigabytes. */
export const DEFAULT_MAX_FRAMES = 1000

export interface DicomDecodeOptions extends DecodeTarget {
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

/** The one image of a single-frame object with its identifiers and place in the series, all from the same parse. */
export interface DicomSlice extends DicomInstance {
  image: DecodedImage
}

/** `decodeDicomSlice` here, or in a worker thread of the service's pool (decoder-pool.ts): the same function. */
export type DicomSliceDecoder = (bytes: Buffer, options: Omit<DicomDecodeOptions, 'maxFrames'>) => Promise<DicomSlice>

export interface ModalityFrames {
  width: number
  height: number
  /** Modality LUT output per frame (Hounsfield units for CT), row-major. */
  frames: Float64Array[]
}

function limitsOf (options: { maxPixels: number, maxFrames?: number }): DicomLimits {
  return { maxPixels: options.maxPixels, maxFrames: options.maxFrames ?? DEFAULT_MAX_FRAMES }
}

/** Modality values (HU) of every frame, before any window: what the HU tests compare with an independent reader. */
export async function readModalityFrames (bytes: Buffer, maxPixels: number): Promise<ModalityFrames> {
  const { header, ...parsed } = parseDicomImage(bytes, limitsOf({ maxPixels }))
  const frames: Float64Array[] = []
  for (let frame = 0; frame < header.frames; frame++) {
    const stored = toStoredValues(await readFrameSamples({ header, ...parsed }, frame, maxPixels), header)
    frames.push(toModalityValues(stored, header.rescaleSlope, header.rescaleIntercept))
  }
  return { width: header.columns, height: header.rows, frames }
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
  return await decodeFrames(parseDicomImage(bytes, limitsOf(options)), options)
}

/**
 * The one image of a single-frame object (what /predict classifies) with its identifiers; multi-frame objects are
 * refused from the header, before any pixel is inflated or decoded.
 */
export async function decodeDicomSlice (bytes: Buffer, options: Omit<DicomDecodeOptions, 'maxFrames'>): Promise<DicomSlice> {
  const parsed = parseDicomImage(bytes, limitsOf({ ...options, maxFrames: 1 }))
  const decoded = await decodeFrames(parsed, options)
  return { image: decoded.frames[0], identifiers: decoded.identifiers, ...parsed.header.placement }
}

async function decodeFrames (parsed: ParsedDicom, options: DicomDecodeOptions): Promise<DecodedDicom> {
  const { header } = parsed
  // The VOI LUT Function only qualifies the file's own window; the default is always the linear function.
  const window: AppliedWindow = header.window !== undefined
    ? { ...header.window, source: 'file' }
    : { ...(options.defaultWindow ?? ABDOMEN_WINDOW), source: 'default' }
  const table = windowTable({
    ...header, window, fn: window.source === 'file' ? voiFunction(header.voiLutFunction) : 'LINEAR', invert: header.photometricInterpretation === 'MONOCHROME1'
  })
  const frames: DecodedImage[] = []
  for (let frame = 0; frame < header.frames; frame++) {
    const grey = lookUpSamples(await readFrameSamples(parsed, frame, options.maxPixels), header, table)
    frames.push({ pixels: greyToChannels(grey, options.channels), width: header.columns, height: header.rows, channels: options.channels })
  }
  return { frames, identifiers: header.identifiers, transferSyntaxUid: header.transferSyntaxUid, window }
}
