import sharp, { type Sharp } from 'sharp'
import { decodeDicomInstance, type DecodedInstance, type DicomInstanceDecoder, type WindowSource } from './dicom/decode-dicom.js'
import type { DicomWindow } from './dicom/dataset.js'
import { CorruptImageError, UnsupportedMediaTypeError } from './errors.js'
import type { DecodedImage, DecodeTarget } from './image.js'
import { readCheckedHeader, type CheckedHeader } from './image-header.js'
import { sniffFormat } from './sniff.js'
import { widenedFromEightBits } from './widened-grey.js'

export type { DecodedImage } from './image.js'

// libvips' operation cache keeps its last 100 operations with their input and output images, bounded only by the
// pixel memory it tracks. A PNG's text chunks are not tracked: a 13.7 MB PNG of 2,000 zTXt chunks, each inflating to
// 7 MB of text, left 2 GB resident in the cache per upload (two uploads: 495 MB to 4.6 GB, 503 OVERLOADED). Uploads
// are never decoded twice, so the cache saves nothing here.
sharp.cache(false)

/**
 * Charges `bytes` of decoded image; `held`: they are in memory already (a DICOM file's frames, back from its decoder),
 * so the charge must be taken or refused at once: waiting for room would hold them outside the budget meanwhile.
 */
export type Reserve = (bytes: number, held?: boolean) => void | Promise<void>

export interface DecodeOptions extends DecodeTarget {
  /** DICOM only: the model's input window in HU (default: abdomen, centre 40 HU, width 400 HU). */
  dicomWindow?: DicomWindow
  /** DICOM only: `model` (default) applies `dicomWindow` whatever the file carries; `file` prefers the file's window. */
  dicomWindowSource?: WindowSource
  /** DICOM only: Modality values classified (default CT; inference/dicom/image-kind.ts). */
  dicomModalities?: readonly string[]
  /** Where DICOM is decoded: the service passes its worker pool (inference/dicom/decoder-pool.ts); else this thread. */
  dicomDecoder?: DicomInstanceDecoder
  /** DICOM only: frames of one object decoded at most (default 1: a multi-frame object is refused as MULTI_FRAME_DICOM). */
  dicomMaxFrames?: number
  /** DICOM only: Rows x Columns x frames of a multi-frame object at most. */
  dicomMaxTotalPixels?: number
  /** DICOM only: decode this frame (0-based) of a multi-frame object, and nothing else. */
  dicomFrame?: number
  /**
   * Told how many bytes the decoded image will hold, before they are held (JPEG/PNG: before decoding; DICOM: as
   * the pixels come back from its decoder, whose own memory is bounded by the pool, `held` true); throws to refuse.
   * The service charges its in-flight byte budget here, and may make a decode that holds nothing yet wait for room.
   */
  reserve?: Reserve
}

/**
 * Third step of an upload's path, decoding, for callers that need the full-size image (training export and
 * evaluation: in-painting, overlays): sniff -> pixel budget -> 8-bit pixels, auto-oriented, alpha flattened onto
 * black; a single-frame DICOM file through HU windowing to the same 8-bit form (inference/dicom/). A multi-frame
 * DICOM object is refused (MULTI_FRAME_DICOM: training export and evaluation take slices) unless `frame` (0-based)
 * names the one wanted, as the overlay of its answer does: only that frame is decoded and charged (an object of 300
 * frames decoded whole for one frame's overlay needed more than the whole in-flight budget).
 */
export async function decodeImage (bytes: Buffer, options: DecodeOptions, frame?: number): Promise<DecodedImage> {
  const format = sniffFormat(bytes)
  if (format === undefined) throw new UnsupportedMediaTypeError()
  if (format === 'dicom') {
    const { frames } = await decodeDicomUpload(bytes, frame === undefined ? { ...options, dicomMaxFrames: 1 } : { ...options, dicomFrame: frame })
    return frames[0].image
  }
  const { decoded } = await checkImageHeader(bytes, format, options)
  return decoded ?? await decodeCheckedImage(bytes, options)
}

export interface CheckedImage extends CheckedHeader {
  /** A 16-bit greyscale PNG, decoded once while its samples were checked (`decodeSixteenBitGrey`). */
  decoded?: DecodedImage
}

/**
 * The pixel budget of a JPEG or PNG from its header, and its decoded size charged before any pixel is decoded, in one
 * charge: with a 16-bit greyscale PNG's samples, which are held while they are checked (`decodeSixteenBitGrey`).
 */
export async function checkImageHeader (bytes: Buffer, format: 'jpeg' | 'png', options: DecodeOptions): Promise<CheckedImage> {
  const header = await readCheckedHeader(bytes, format, options.maxPixels)
  const pixels = header.width * header.height
  // the samples as decodeSixteenBitGrey holds them: 2 bytes a channel, grey and (if any) alpha
  await options.reserve?.(pixels * options.channels + pixels * 2 * header.sixteenBitGreyChannels)
  return header.sixteenBitGreyChannels > 0 ? { ...header, decoded: await decodeSixteenBitGrey(bytes, options) } : header
}

/**
 * A 16-bit greyscale PNG is a display image only when it is an 8-bit one widened: every sample a multiple of 257,
 * as libvips, ImageMagick and PIL widen. Any other holds raw values, stored values or Hounsfield units (HU + 32768
 * in DeepLesion, HU + 1024 from a script saving pydicom's pixel_array), whose window the PNG does not carry; cut to
 * 8 bits they are a near-uniform grey that the model still reads with confidence: CT_small.dcm is Stone (P 0.5645)
 * as DICOM and as a windowed 8-bit PNG (0.5676), and was Normal as 16-bit PNGs of HU + 32768 (0.0003) and of
 * HU + 1024 (0.0000). A widened one is decoded once: the samples checked become the 8-bit image here, where the
 * file was decoded a second time before.
 */
async function decodeSixteenBitGrey (bytes: Buffer, options: DecodeOptions): Promise<DecodedImage> {
  // Oriented as decodingPipeline orients, so that the steps below give decodeCheckedImage's pixels without a second
  // decode of the file (byte for byte: test/preprocess.test.ts).
  const { data, info } = await asCorruptImageError(async () => await sharp(bytes, { limitInputPixels: options.maxPixels, failOn: 'error', autoOrient: true })
    .toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true }))
  const raw = { width: info.width, height: info.height, channels: info.channels as 1 | 2 }
  if (!await widenedFromEightBits(data, raw.channels)) {
    throw new UnsupportedMediaTypeError('This 16-bit greyscale PNG holds raw values (stored values or Hounsfield units), not grey ' +
      'levels as a screen shows them, and no window to turn them into grey levels: send the DICOM file, or the slice as an 8-bit image as displayed.')
  }
  const samples = new Uint16Array(data.buffer, data.byteOffset, data.length / 2)
  return await toDecodedImage(servicePixels(sharp(samples, { raw }), options), options)
}

/** A DICOM upload through its decoder, which checks every budget before it decodes (inference/dicom/). */
export async function decodeDicomUpload (bytes: Buffer, options: DecodeOptions): Promise<DecodedInstance> {
  const decode = options.dicomDecoder ?? decodeDicomInstance
  const instance = await decode(bytes, {
    channels: options.channels, maxPixels: options.maxPixels, window: options.dicomWindow, windowSource: options.dicomWindowSource,
    modalities: options.dicomModalities, maxFrames: options.dicomMaxFrames, maxTotalPixels: options.dicomMaxTotalPixels,
    ...(options.dicomFrame === undefined ? {} : { frame: options.dicomFrame })
  })
  await options.reserve?.(instance.frames.reduce((bytes, frame) => bytes + frame.image.pixels.length, 0), true)
  return instance
}

/** A JPEG or PNG whose header `checkImageHeader` has passed, decoded to full size. */
export async function decodeCheckedImage (bytes: Buffer, options: DecodeTarget): Promise<DecodedImage> {
  return await decodePixels(bytes, options, async (pipeline) => await toDecodedImage(pipeline, options))
}

async function toDecodedImage (pipeline: Sharp, options: DecodeTarget): Promise<DecodedImage> {
  const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true })
  if (info.channels !== options.channels) throw new CorruptImageError()
  return { pixels: data, width: info.width, height: info.height, channels: options.channels }
}

/**
 * The libvips steps that turn JPEG/PNG bytes into the service's pixels: auto-orient, flatten, colour mode.
 * A JPEG that libjpeg warns about is refused, not decoded: JPEG has no checksum, and a scan that ends before the
 * image does (a copy cut short and padded with zeros, as a preallocated file is) decodes with only a warning
 * ("Corrupt JPEG data: premature end of data segment") into grey blocks that the model reads as anatomy: a stone
 * slice, P(Stone) 0.996, with its second half zeroed came back Normal, 0.0006. None of the 6,534 JPEGs under
 * ../shared/data warns. libvips does not pass on every libjpeg warning: a bad Huffman code or bytes left after
 * the scan still decode (docs/api.md). A PNG is refused on an error: below that level libvips has libpng ignore
 * chunk CRCs, and a damaged IHDR decoded as what it said: the stone slice with its height changed from 384 to 180
 * rows (CRC left as it was) lost the rows with the stone and came back Normal, 0.0010.
 * One JPEG warning says nothing about the pixels: bytes between two header segments ("2 extraneous bytes before
 * marker 0xdb", which some exporters write). A JPEG refused with only that warning is decoded again, as strictly,
 * without those bytes: its scan is still checked (libjpeg stops at the first warning, so the scan was not read).
 */
export async function decodePixels<T> (bytes: Buffer, options: DecodeTarget, finish: (pipeline: Sharp) => Promise<T>): Promise<T> {
  const jpeg = sniffFormat(bytes) === 'jpeg'
  try {
    return await finish(decodingPipeline(bytes, options, jpeg ? 'warning' : 'error'))
  } catch (error) {
    const repaired = jpeg && onlyHeaderGaps(error) ? withoutHeaderGaps(bytes) : undefined
    if (repaired === undefined) throw new CorruptImageError()
    return await asCorruptImageError(async () => await finish(decodingPipeline(repaired, options, 'warning')))
  }
}

/** The JPEG with the bytes between its header segments (SOI to SOS) left out; undefined when there are none. */
function withoutHeaderGaps (bytes: Buffer): Buffer | undefined {
  const kept: Buffer[] = [bytes.subarray(0, 2)]
  let gaps = false
  let at = 2
  while (at + 3 < bytes.length) {
    if (bytes[at] !== 0xff) { gaps = true; at++; continue }
    if (bytes[at + 1] === 0xff) { at++; continue } // fill bytes before a marker
    if (bytes[at + 1] === 0xda) { kept.push(bytes.subarray(at)); return gaps ? Buffer.concat(kept) : undefined }
    const end = at + 2 + bytes.readUInt16BE(at + 2)
    kept.push(bytes.subarray(at, end))
    at = end
  }
  return undefined
}

/** Markers of header segments (SOFn, DHT, DAC, SOS, DQT, DRI, APPn, COM): not the scan's RSTn, nor EOI. */
const HEADER_GAP = /^VipsJpeg: Corrupt JPEG data: \d+ extraneous bytes before marker 0x(c[0-9a-f]|d[abd]|e[0-9a-f]|fe)$/

function onlyHeaderGaps (error: unknown): boolean {
  const lines = (error instanceof Error ? error.message : '').split('\n').filter((line) => line.trim() !== '')
  return lines.length > 0 && lines.every((line) => HEADER_GAP.test(line.trim()))
}

function decodingPipeline (bytes: Buffer, options: DecodeTarget, failOn: 'warning' | 'error'): Sharp {
  return servicePixels(sharp(bytes, { limitInputPixels: options.maxPixels, failOn, autoOrient: true }), options)
}

/** After decoding and orientation: alpha flattened onto black, then the colour mode asked for. */
function servicePixels (pipeline: Sharp, options: DecodeTarget): Sharp {
  return pipeline.flatten({ background: '#000000' }).toColourspace(options.channels === 1 ? 'b-w' : 'srgb')
}

/** libvips reports broken input with free-text errors; clients get the typed 422 instead. */
export async function asCorruptImageError<T> (decode: () => Promise<T>): Promise<T> {
  try {
    return await decode()
  } catch {
    throw new CorruptImageError()
  }
}
