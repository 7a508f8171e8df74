import sharp, { type Metadata } from 'sharp'
import { CorruptImageError, ImageTooLargeError, TooManyChunksError, TooManyTextChunksError } from './errors.js'
import { checkJpegStructure } from './jpeg-structure.js'

/**
 * Second step of a JPEG or PNG upload's path: its size, read from the header before any pixel is decoded and
 * checked against the pixel budget, so that a 100000x100000 PNG of a few hundred bytes is refused before libvips
 * allocates it.
 */
export interface CheckedHeader {
  /** Size after auto-orientation. */
  width: number
  height: number
  /** 8-bit grey or sRGB samples: decoding and resizing can run in one libvips pipeline (inference/preprocess.ts). */
  eightBitGreyOrSrgb: boolean
  /** An EXIF orientation other than "as stored": the picture is rotated or mirrored when decoded. */
  reoriented: boolean
  /**
   * 16-bit greyscale samples (PNG), display grey levels only if an 8-bit image was widened (inference/decode.ts): how
   * many 16-bit channels a pixel decodes to (1 grey, 2 grey and alpha); 0 for any other image.
   */
  sixteenBitGreyChannels: number
}

/** Plain files are read in JavaScript (`readPlainImageSize` below), the others by libvips. */
export async function readCheckedHeader (bytes: Buffer, format: 'jpeg' | 'png', maxPixels: number): Promise<CheckedHeader> {
  if (format === 'jpeg') checkJpegStructure(bytes)
  else checkPngChunks(bytes)
  const plain = readPlainImageSize(bytes, format)
  if (plain !== undefined) {
    checkPixelCount(plain.width, plain.height, maxPixels)
    return { ...plain, eightBitGreyOrSrgb: true, reoriented: false, sixteenBitGreyChannels: 0 }
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
    reoriented: (header.orientation ?? 1) !== 1,
    sixteenBitGreyChannels: header.depth === 'ushort' && header.space === 'grey16' ? (header.hasAlpha === true ? 2 : 1) : 0
  }
}

/** Refuses a header declaring more than `maxPixels` (EXIF orientations 5-8 swap the axes, not the count). */
function checkPixelCount (width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels) throw new ImageTooLargeError(width, height, maxPixels)
}

/**
 * The size of a JPEG or PNG read from its header in JavaScript, for the images `decodeForModel` can decode and
 * resize in one libvips pipeline: 8-bit samples, grey or RGB (with or without alpha), no EXIF orientation.
 * Under load, asking libvips for the header (sharp's `metadata()`) costs a thread-pool round trip per upload
 * on top of the decode's own; most CT exports are such plain files.
 *
 * Anything unusual or malformed gives `undefined`, and the caller asks libvips as before: this parser only has
 * to be right about the files it accepts (test/image-header.test.ts holds it to libvips on real and hostile
 * files). The pixel limit does not depend on it: the decoding pipeline enforces `limitInputPixels` itself.
 */
export interface PlainImageSize {
  width: number
  height: number
}

export function readPlainImageSize (bytes: Buffer, format: 'jpeg' | 'png'): PlainImageSize | undefined {
  return format === 'jpeg' ? plainJpegSize(bytes) : plainPngSize(bytes)
}

/** Start-of-frame markers of baseline, extended and progressive Huffman JPEG (the others go to libvips). */
const PLAIN_SOF = new Set([0xc0, 0xc1, 0xc2])
const OTHER_SOF = new Set([0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf])
const APP1 = 0xe1
const SOS = 0xda
const EXIF_ID = Buffer.from('Exif\0\0', 'latin1')

/** Walks the marker segments up to the first scan, as libjpeg reads the header, without tolerating damage. */
function plainJpegSize (bytes: Buffer): PlainImageSize | undefined {
  let size: PlainImageSize | undefined
  let offset = 2 // after SOI
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) return undefined
    while (bytes[offset] === 0xff && offset < bytes.length) offset++ // fill bytes
    const marker = bytes[offset]
    // standalone markers (TEM, RSTn, a second SOI, EOI) do not belong before the first scan
    if (marker === undefined || marker === 0x00 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9)) return undefined
    if (offset + 3 > bytes.length) return undefined
    const length = bytes.readUInt16BE(offset + 1)
    const segment = offset + 3
    if (length < 2 || segment + length - 2 > bytes.length) return undefined
    if (marker === SOS) return size
    if (OTHER_SOF.has(marker)) return undefined
    if (PLAIN_SOF.has(marker)) {
      if (size !== undefined || length < 8) return undefined
      const precision = bytes[segment]
      const height = bytes.readUInt16BE(segment + 1)
      const width = bytes.readUInt16BE(segment + 3)
      const components = bytes[segment + 5]
      if (precision !== 8 || (components !== 1 && components !== 3) || width === 0 || height === 0) return undefined
      size = { width, height }
    }
    if (marker === APP1 && length - 2 >= EXIF_ID.length && bytes.subarray(segment, segment + EXIF_ID.length).equals(EXIF_ID)) {
      return undefined // may rotate: libvips reads the orientation
    }
    offset = segment + length - 2
  }
  return undefined
}

const PNG_SIGNATURE_LENGTH = 8

/**
 * Chunks a PNG may have. Each chunk header is read on the event loop before decoding (here and by `plainPngSize`), and
 * a chunk can be 12 bytes: a 16.8 MB PNG of 1.4 million empty unknown chunks held the event loop for a few hundred
 * milliseconds, every other request waiting meanwhile. Encoders split the image data into IDAT chunks of 8 KiB
 * (libpng, libvips) to 64 KiB (PIL): a PNG within MAX_FILE_BYTES (20 MiB) has at most about 2,600 of 8 KiB.
 */
export const MAX_PNG_CHUNKS = 20_000

/**
 * Compressed text chunks (zTXt, iTXt) a PNG may have. libpng inflates each, up to 8 MB, and keeps up to 1000 of them
 * for libvips, which copies them into the image's metadata: a 13.7 MB PNG of 2,000 zTXt chunks of 6.8 kB, each 7 MB
 * of text, held 2.1 GB while it was decoded, SHARP_CONCURRENCY such uploads at once. Exporters write a few (ImageMagick
 * its raw EXIF, IPTC and XMP profiles, Photoshop one XMP packet).
 */
export const MAX_PNG_TEXT_CHUNKS = 16
const ZTXT = 0x7a545874
const ITXT = 0x69545874
const IEND = 0x49454e44
const IHDR = 0x49484452
const EXIF = 0x65584966

/** Refuses a PNG of more than MAX_PNG_CHUNKS chunks, or of more than MAX_PNG_TEXT_CHUNKS compressed text chunks. */
function checkPngChunks (bytes: Buffer): void {
  let chunks = 0
  let texts = 0
  for (let offset = PNG_SIGNATURE_LENGTH; offset + 8 <= bytes.length; offset += 12 + bytes.readUInt32BE(offset)) {
    if (++chunks > MAX_PNG_CHUNKS) throw new TooManyChunksError(MAX_PNG_CHUNKS)
    const type = bytes.readUInt32BE(offset + 4)
    if (type === IEND) return
    if ((type === ZTXT || type === ITXT) && ++texts > MAX_PNG_TEXT_CHUNKS) throw new TooManyTextChunksError(MAX_PNG_TEXT_CHUNKS)
  }
}
/** Colour types grey, RGB, grey + alpha, RGBA (palette images go to libvips). */
const PLAIN_PNG_COLOUR_TYPES = new Set([0, 2, 4, 6])

/** IHDR, then every chunk header up to IEND (MAX_PNG_CHUNKS at most): an eXIf chunk anywhere may carry an orientation. */
function plainPngSize (bytes: Buffer): PlainImageSize | undefined {
  const ihdr = PNG_SIGNATURE_LENGTH
  if (bytes.length < ihdr + 8 + 13 || bytes.readUInt32BE(ihdr) !== 13 || bytes.readUInt32BE(ihdr + 4) !== IHDR) return undefined
  const width = bytes.readUInt32BE(ihdr + 8)
  const height = bytes.readUInt32BE(ihdr + 12)
  const bitDepth = bytes[ihdr + 16]
  const colourType = bytes[ihdr + 17]
  if (bitDepth !== 8 || !PLAIN_PNG_COLOUR_TYPES.has(colourType) || width === 0 || height === 0) return undefined
  for (let offset = ihdr, chunks = 1; offset + 8 <= bytes.length && chunks <= MAX_PNG_CHUNKS; offset += 12 + bytes.readUInt32BE(offset), chunks++) {
    const type = bytes.readUInt32BE(offset + 4)
    if (type === EXIF) return undefined
    if (type === IEND) return { width, height }
  }
  return undefined
}
