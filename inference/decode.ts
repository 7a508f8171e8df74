import sharp, { type Metadata, type Sharp } from 'sharp'
import type { DicomWindow } from './dicom/dataset.js'
import { decodeDicomSlice } from './dicom/decode-dicom.js'
import { CorruptImageError, ImageTooLargeError, UnsupportedMediaTypeError } from './errors.js'
import { readPlainImageSize } from './image-header.js'

export type ImageFormat = 'jpeg' | 'png' | 'dicom'

/** 8-bit pixels, interleaved, row-major: what every input format is turned into before preprocessing. */
export interface DecodedImage {
  pixels: Buffer
  width: number
  height: number
  channels: 1 | 3
}

export interface DecodeOptions {
  /** 1: greyscale (CT is greyscale; colour screenshots are reduced to luminance), 3: sRGB. */
  channels: 1 | 3
  /** Largest width x height accepted; checked from the header before any pixel is decoded. */
  maxPixels: number
  /** DICOM only: the window applied when the file has none (default: abdomen, centre 40 HU, width 400 HU). */
  dicomWindow?: DicomWindow
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** The format is decided by magic bytes only: a client's file name or Content-Type is never trusted. */
export function sniffFormat (bytes: Buffer): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg'
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png'
  if (bytes.length >= 132 && bytes.toString('latin1', 128, 132) === 'DICM') return 'dicom'
  return undefined
}

export const FILE_EXTENSIONS: Record<ImageFormat, string> = { jpeg: 'jpg', png: 'png', dicom: 'dcm' }

/** What decoding needs to know about a JPEG or PNG before any pixel is decoded. */
export interface CheckedHeader {
  /** Size after auto-orientation. */
  width: number
  height: number
  /** 8-bit grey or sRGB samples: decoding and resizing can run in one libvips pipeline (inference/preprocess.ts). */
  eightBitGreyOrSrgb: boolean
  /** An EXIF orientation other than "as stored": the picture is rotated or mirrored when decoded. */
  reoriented: boolean
}

/**
 * The header of a JPEG or PNG, read before any pixel is decoded: a 100000x100000 PNG of a few hundred bytes
 * must be refused before libvips allocates it. Plain files are read in JavaScript (inference/image-header.ts),
 * the others by libvips.
 */
export async function readCheckedHeader (bytes: Buffer, format: 'jpeg' | 'png', maxPixels: number): Promise<CheckedHeader> {
  const plain = readPlainImageSize(bytes, format)
  if (plain !== undefined) {
    checkPixelCount(plain.width, plain.height, maxPixels)
    return { ...plain, eightBitGreyOrSrgb: true, reoriented: false }
  }
  let header: Metadata
  try {
    header = await sharp(bytes, { limitInputPixels: false }).metadata()
  } catch {
    throw new CorruptImageError()
  }
  if (header.format !== format || header.width === undefined || header.height === undefined) {
    throw new CorruptImageError()
  }
  checkPixelCount(header.width, header.height, maxPixels)
  return {
    ...header.autoOrient,
    eightBitGreyOrSrgb: header.depth === 'uchar' && ['srgb', 'b-w'].includes(header.space ?? ''),
    reoriented: (header.orientation ?? 1) !== 1
  }
}

/** Refuses a header declaring more than `maxPixels` (EXIF orientations 5-8 swap the axes, not the count). */
function checkPixelCount (width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels) throw new ImageTooLargeError(width, height, maxPixels)
}

/**
 * Decodes a JPEG or PNG upload to 8-bit pixels, auto-oriented, alpha flattened onto black; a single-frame
 * DICOM file goes through HU windowing to the same 8-bit form (inference/dicom/).
 */
export async function decodeImage (bytes: Buffer, options: DecodeOptions): Promise<DecodedImage> {
  const format = sniffFormat(bytes)
  if (format === 'dicom') return await decodeDicomSlice(bytes, { ...options, defaultWindow: options.dicomWindow })
  if (format === undefined) throw new UnsupportedMediaTypeError()

  await readCheckedHeader(bytes, format, options.maxPixels)
  return await decodeCheckedImage(bytes, options)
}

/** `decodeImage` for a JPEG or PNG whose header `readCheckedHeader` has already passed. */
export async function decodeCheckedImage (bytes: Buffer, options: DecodeOptions): Promise<DecodedImage> {
  const { data, info } = await asCorruptImageError(async () => await decodingPipeline(bytes, options).raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true }))
  if (info.channels !== options.channels) throw new CorruptImageError()
  return { pixels: data, width: info.width, height: info.height, channels: options.channels }
}

/** The libvips steps that turn JPEG/PNG bytes into the service's pixels: auto-orient, flatten, colour mode. */
export function decodingPipeline (bytes: Buffer, options: DecodeOptions): Sharp {
  return sharp(bytes, { limitInputPixels: options.maxPixels, failOn: 'truncated', autoOrient: true })
    .flatten({ background: '#000000' })
    .toColourspace(options.channels === 1 ? 'b-w' : 'srgb')
}

/** libvips reports broken input with free-text errors; clients get the typed 422 instead. */
export async function asCorruptImageError<T> (decode: () => Promise<T>): Promise<T> {
  try {
    return await decode()
  } catch {
    throw new CorruptImageError()
  }
}
