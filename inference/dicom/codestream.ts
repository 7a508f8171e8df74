import { CorruptDicomError } from './errors.js'

/**
 * What a compressed frame says about itself, read from its own header before any decoding: a decoder allocates
 * what its codestream declares, not what the DICOM header says, so the two are compared first (codecs.ts).
 */
export interface FrameHeader {
  width: number
  height: number
  bitsPerSample: number
  components: number
}

/** One decoded frame: samples of up to 8 bits take one byte each, wider ones two bytes little endian. */
export interface DecodedFrame {
  bytes: Uint8Array
  width: number
  height: number
  bitsPerSample: number
  components: number
}

/** The frame's geometry as the DICOM header gives it (RLE segments carry no dimensions of their own). */
export interface FrameGeometry {
  rows: number
  columns: number
  bitsAllocated: number
}

const JPEG_SOI = 0xd8
const JPEG_SOS = 0xda
const JPEG_EOI = 0xd9
/** Start-of-frame markers of ISO 10918 (every SOFn; C4, C8 and CC are other segments). */
export const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf])
/** SOF55, JPEG-LS (ISO 14495-1). */
export const JPEG_LS_SOF = new Set([0xf7])

/**
 * The frame header of a JPEG or JPEG-LS codestream: the first SOF segment (precision P, lines Y, samples per
 * line X, components Nf), found by walking the marker segments from SOI; a scan or the end before it is damage.
 */
export function readSofFrameHeader (encoded: Uint8Array, sofMarkers: ReadonlySet<number>, name: string): FrameHeader {
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength)
  if (encoded.length < 4 || encoded[0] !== 0xff || encoded[1] !== JPEG_SOI) throw new CorruptDicomError(`the ${name} codestream does not start with SOI`)
  let offset = 2
  while (offset + 4 <= encoded.length) {
    if (encoded[offset] !== 0xff) throw new CorruptDicomError(`the ${name} codestream has no marker where one is due`)
    while (offset < encoded.length && encoded[offset] === 0xff) offset++ // fill bytes
    const marker = encoded[offset++]
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue // standalone markers
    if (marker === JPEG_SOS || marker === JPEG_EOI || offset + 2 > encoded.length) break
    const length = view.getUint16(offset)
    if (sofMarkers.has(marker)) {
      if (length < 8 || offset + 8 > encoded.length) break
      return {
        bitsPerSample: encoded[offset + 2],
        height: view.getUint16(offset + 3),
        width: view.getUint16(offset + 5),
        components: encoded[offset + 7]
      }
    }
    if (length < 2) break
    offset += length
  }
  throw new CorruptDicomError(`the ${name} codestream has no frame header before its data`)
}

const J2K_SOC = 0xff4f
const J2K_SIZ = 0xff51
/** Isot, the tile index of a JPEG 2000 codestream, has 16 bits: more tiles cannot be addressed. */
const J2K_MAX_TILES = 65535

/**
 * The SIZ segment that must follow SOC in a JPEG 2000 codestream (ISO 15444-1 A.5.1): image and tile sizes,
 * components and their precision. A tiny tile size is refused too: OpenJPEG allocates per tile.
 */
export function readJ2kFrameHeader (encoded: Uint8Array, _geometry: FrameGeometry, name = 'JPEG 2000'): FrameHeader {
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength)
  if (encoded.length < 45 || view.getUint16(0) !== J2K_SOC || view.getUint16(2) !== J2K_SIZ) {
    throw new CorruptDicomError(`the ${name} codestream does not start with SOC and SIZ`)
  }
  const [xSiz, ySiz, xOff, yOff, tileWidth, tileHeight, tileXOff, tileYOff] = [8, 12, 16, 20, 24, 28, 32, 36].map((at) => view.getUint32(at))
  const components = view.getUint16(40)
  if (xOff >= xSiz || yOff >= ySiz || tileWidth === 0 || tileHeight === 0 || tileXOff > xOff || tileYOff > yOff ||
      components === 0 || encoded.length < 42 + 3 * components) {
    throw new CorruptDicomError(`the ${name} SIZ segment is inconsistent`)
  }
  const tiles = Math.ceil((xSiz - tileXOff) / tileWidth) * Math.ceil((ySiz - tileYOff) / tileHeight)
  if (tiles > J2K_MAX_TILES) throw new CorruptDicomError(`the ${name} codestream declares ${tiles} tiles`)
  return { width: xSiz - xOff, height: ySiz - yOff, bitsPerSample: (encoded[42] & 0x7f) + 1, components }
}

const RLE_HEADER_BYTES = 64
const RLE_MAX_SEGMENTS = 15

/**
 * The 64-byte header of a DICOM RLE frame (PS3.5 G.5): the segment count, then 15 segment offsets. One segment
 * per byte of a greyscale sample, each starting after the previous one and inside the frame; the size is the
 * DICOM header's (RLE carries none).
 */
export function readRleFrameHeader (encoded: Uint8Array, geometry: FrameGeometry): FrameHeader {
  if (encoded.length < RLE_HEADER_BYTES) throw new CorruptDicomError('the RLE header is truncated')
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength)
  const segments = view.getUint32(0, true)
  if (segments < 1 || segments > RLE_MAX_SEGMENTS) throw new CorruptDicomError(`the RLE header declares ${segments} segments`)
  let previous = RLE_HEADER_BYTES - 1
  for (let segment = 0; segment < RLE_MAX_SEGMENTS; segment++) {
    const offset = view.getUint32(4 + segment * 4, true)
    if (segment >= segments) {
      if (offset !== 0) throw new CorruptDicomError(`the RLE header has an offset for segment ${segment + 1} of ${segments}`)
    } else if (offset <= previous || offset >= encoded.length || (segment === 0 && offset !== RLE_HEADER_BYTES)) {
      throw new CorruptDicomError(`RLE segment ${segment + 1} starts at ${offset}, outside the frame or before the previous segment`)
    } else {
      previous = offset
    }
  }
  // One segment per byte plane of one sample: 8 bits each, most significant first.
  return { width: geometry.columns, height: geometry.rows, bitsPerSample: segments * 8, components: 1 }
}
