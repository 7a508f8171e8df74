import type { DecodedImage, DecodeTarget } from '../image.js'
import { parseDicomImage, type DicomIdentifiers, type DicomImageHeader, type DicomInstance, type DicomLimits, type DicomWindow, type ParsedDicom } from './dataset.js'
import { imageKind, type ImageKind } from './image-kind.js'
import { lookUpSamples, readFrameSamples, toStoredValues } from './pixel-data.js'
import { ABDOMEN_WINDOW, displayTable, toModalityValues, windowTable, type VoiFunction } from './voi.js'

/** Frames decoded from one object at most: a few kilobytes of JPEG-LS can otherwise expand to gigabytes. */
export const DEFAULT_MAX_FRAMES = 1000

/**
 * Whose window turns HU into the model's grey levels. `model` (the default): the model's own input window, whatever
 * VOI the file carries, so the same HU always give the same answer; `file`: the file's first window when it has one.
 */
export type WindowSource = 'model' | 'file'

export interface DicomDecodeOptions extends DecodeTarget {
  maxFrames?: number
  /** Rows x Columns x frames of a multi-frame object at most (checked from the header): `DicomTooLargeError` above. */
  maxTotalPixels?: number
  /** Modality (0008,0060) values classified (default CT, image-kind.ts); others are refused as UNSUPPORTED_MODALITY. */
  modalities?: readonly string[]
  /** The model's input window in HU (its sidecar's `input.window`); defaults to ABDOMEN_WINDOW. */
  window?: DicomWindow
  /** Default `model`. */
  windowSource?: WindowSource
  /** Decode this frame only (0-based), so `frames` holds its one image: the overlay of one frame of an answer. */
  frame?: number
}

/** The window an image was read with; `display`: a display image's own grey levels, no window (image-kind.ts). */
export type AppliedWindow = (DicomWindow & { source: 'file' | 'model' }) | { source: 'display' }

export interface DecodedDicom {
  /** One 8-bit image per frame, in frame order. */
  frames: DecodedImage[]
  identifiers: DicomIdentifiers
  transferSyntaxUid: string
  /** The first frame's window (an enhanced object may window each frame differently with windowSource `file`). */
  window: AppliedWindow
}

/** One frame's image and its place along the slice normal (an enhanced CT's frames are its slices). */
export interface DicomFrame {
  image: DecodedImage
  slicePosition?: number
}

/**
 * The images of one object (one for a single-frame slice, one per frame of a multi-frame object, in frame order)
 * with its identifiers and place in the series (the first frame's), all from the same parse.
 */
export interface DecodedInstance extends DicomInstance {
  frames: DicomFrame[]
}

/**
 * `decodeDicomInstance` here, or in a worker thread of the service's pool (decoder-pool.ts): the same function.
 * `maxFrames` defaults to 1: a multi-frame object is then refused from its header (MULTI_FRAME_DICOM).
 */
export type DicomInstanceDecoder = (bytes: Buffer, options: DicomDecodeOptions) => Promise<DecodedInstance>

export interface ModalityFrames {
  width: number
  height: number
  /** Modality LUT output per frame (Hounsfield units for CT), row-major. */
  frames: Float64Array[]
}

function limitsOf (options: { maxPixels: number, maxFrames?: number, maxTotalPixels?: number }): DicomLimits {
  return { maxPixels: options.maxPixels, maxFrames: options.maxFrames ?? DEFAULT_MAX_FRAMES, maxTotalPixels: options.maxTotalPixels }
}

/** Modality values (HU) of every frame, before any window: what the HU tests compare with an independent reader. */
export async function readModalityFrames (bytes: Buffer, maxPixels: number): Promise<ModalityFrames> {
  const { header, ...parsed } = parseDicomImage(bytes, limitsOf({ maxPixels }))
  const frames: Float64Array[] = []
  for (let frame = 0; frame < header.frames; frame++) {
    const stored = toStoredValues(await readFrameSamples({ header, ...parsed }, frame, maxPixels), header)
    const { rescaleSlope, rescaleIntercept } = header.frameAttributes[frame]
    frames.push(toModalityValues(stored, rescaleSlope, rescaleIntercept))
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
 * LUT (HU) -> window (the model's; with windowSource `file` the file's when it has one) -> grey, replicated to 3 channels when asked.
 */
export async function decodeDicom (bytes: Buffer, options: DicomDecodeOptions): Promise<DecodedDicom> {
  return await decodeFrames(parseDicomImage(bytes, limitsOf(options)), options)
}

/**
 * What /predict classifies: every frame of an object, at most `maxFrames` (default 1), each with its slice position;
 * an object with more frames is refused from the header, before any pixel is inflated or decoded.
 */
export async function decodeDicomInstance (bytes: Buffer, options: DicomDecodeOptions): Promise<DecodedInstance> {
  const parsed = parseDicomImage(bytes, limitsOf({ ...options, maxFrames: options.maxFrames ?? 1 }))
  const decoded = await decodeFrames(parsed, options)
  const { placement, acquired, frameAttributes } = parsed.header
  const frames = decoded.frames.map((image, i) => {
    const { slicePosition } = frameAttributes[options.frame ?? i]
    return { image, ...(slicePosition === undefined ? {} : { slicePosition }) }
  })
  return { frames, identifiers: decoded.identifiers, ...placement, ...(acquired === undefined ? {} : { acquired }) }
}

/** The grey table of one frame: its display values, or its rescale through the model's (or the file's) window. */
function frameTable (header: DicomImageHeader, frame: number, kind: ImageKind, options: DicomDecodeOptions): { table: Uint8Array, window: AppliedWindow } {
  const invert = header.photometricInterpretation === 'MONOCHROME1'
  if (kind === 'display') return { table: displayTable({ ...header, invert }), window: { source: 'display' } }
  const attributes = header.frameAttributes[frame]
  // The VOI LUT Function only qualifies the file's own window; the model's is always the linear function.
  const window: AppliedWindow = attributes.window !== undefined && options.windowSource === 'file'
    ? { ...attributes.window, source: 'file' }
    : { ...(options.window ?? ABDOMEN_WINDOW), source: 'model' }
  const fn = window.source === 'file' ? voiFunction(header.voiLutFunction) : 'LINEAR'
  return { table: windowTable({ ...header, ...attributes, window, fn, invert }), window }
}

async function decodeFrames (parsed: ParsedDicom, options: DicomDecodeOptions): Promise<DecodedDicom> {
  const { header } = parsed
  const kind = imageKind(header, options.modalities)
  const tables = new Map<string, ReturnType<typeof frameTable>>()
  const frames: DecodedImage[] = []
  let first: AppliedWindow | undefined
  if (options.frame !== undefined && !(options.frame >= 0 && options.frame < header.frames)) {
    throw new Error(`frame ${options.frame} asked of an object of ${header.frames}`)
  }
  const wanted = options.frame === undefined ? Array.from({ length: header.frames }, (_, frame) => frame) : [options.frame]
  for (const frame of wanted) {
    // Frames that share a rescale and window share a table (all of them, in nearly every object).
    const { rescaleSlope, rescaleIntercept, window } = header.frameAttributes[frame]
    const key = `${rescaleSlope}/${rescaleIntercept}/${window?.center}/${window?.width}`
    const lookUp = tables.get(key) ?? frameTable(header, frame, kind, options)
    tables.set(key, lookUp)
    first ??= lookUp.window
    const grey = lookUpSamples(await readFrameSamples(parsed, frame, options.maxPixels), header, lookUp.table)
    frames.push({ pixels: greyToChannels(grey, options.channels), width: header.columns, height: header.rows, channels: options.channels })
  }
  return { frames, identifiers: header.identifiers, transferSyntaxUid: header.transferSyntaxUid, window: first as AppliedWindow }
}
