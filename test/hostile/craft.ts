import { crc32, deflateSync } from 'node:zlib'

/** Byte-level builders for hostile files: everything is made at run time, nothing binary is committed. */

export function truncate (bytes: Buffer, length: number): Buffer {
  return Buffer.from(bytes.subarray(0, length))
}

/** A copy with one bit inverted. */
export function flipBit (bytes: Buffer, offset: number, bit: number): Buffer {
  const copy = Buffer.from(bytes)
  copy[offset] ^= 1 << bit
  return copy
}

/** Offsets of a JPEG's marker segments before the entropy-coded data (SOS): [marker, offset of the marker]. */
export function jpegSegments (bytes: Buffer): Array<{ marker: number, offset: number, length: number }> {
  const segments: Array<{ marker: number, offset: number, length: number }> = []
  let offset = 2
  while (offset + 4 <= bytes.length && bytes[offset] === 0xff) {
    const marker = bytes[offset + 1]
    const length = bytes.readUInt16BE(offset + 2)
    segments.push({ marker, offset, length })
    if (marker === 0xda) break
    offset += 2 + length
  }
  return segments
}

/** Where the entropy-coded data starts (just after the SOS header) and ends (before EOI). */
export function jpegEntropyRange (bytes: Buffer): { start: number, end: number } {
  const sos = jpegSegments(bytes).find((s) => s.marker === 0xda)
  if (sos === undefined) throw new Error('no SOS segment')
  return { start: sos.offset + 2 + sos.length, end: bytes.length - 2 }
}

/** The JPEG with the dimensions in its SOF header replaced (the pixel data still describes the old size). */
export function jpegWithDimensions (bytes: Buffer, width: number, height: number): Buffer {
  const sof = jpegSegments(bytes).find((s) => s.marker >= 0xc0 && s.marker <= 0xc2)
  if (sof === undefined) throw new Error('no SOF segment')
  const copy = Buffer.from(bytes)
  copy.writeUInt16BE(height, sof.offset + 5)
  copy.writeUInt16BE(width, sof.offset + 7)
  return copy
}

/** The JPEG with `count` empty segments of `marker` (APPn, COM) after its SOI. */
export function jpegWithEmptySegments (jpeg: Buffer, marker: number, count: number): Buffer {
  return Buffer.concat([jpeg.subarray(0, 2), Buffer.alloc(4 * count, Buffer.from([0xff, marker, 0, 2])), jpeg.subarray(2)])
}

/** Every marker segment of a JPEG up to EOI, a scan (SOS) with its entropy-coded data. */
function jpegAllSegments (bytes: Buffer): Array<{ marker: number, segment: Buffer }> {
  const segments: Array<{ marker: number, segment: Buffer }> = []
  let offset = 2
  while (offset + 4 <= bytes.length && bytes[offset + 1] !== 0xd9) {
    const marker = bytes[offset + 1]
    let end = offset + 2 + bytes.readUInt16BE(offset + 2)
    // entropy-coded data ends at the first 0xFF followed by neither a stuffed zero nor a restart marker
    while (marker === 0xda && !(bytes[end] === 0xff && bytes[end + 1] !== 0 && (bytes[end + 1] < 0xd0 || bytes[end + 1] > 0xd7))) end++
    segments.push({ marker, segment: bytes.subarray(offset, end) })
    offset = end
  }
  return segments
}

/**
 * A valid progressive JPEG in `scans` scans, from a progressive `jpeg` whose AC coefficients are all zero (an image
 * constant over each 8x8 block): its first (DC) scan, then its last AC scan's few bytes of end-of-band runs sent again
 * for one coefficient after another, each refined bit by bit (Ss = Se = k; Ah/Al 0/10, 10/9, ... 1/0), which is
 * what libjpeg accepts without a warning: up to 1 + 63 x 11 scans.
 */
export function jpegInScans (jpeg: Buffer, scans: number): Buffer {
  const segments = jpegAllSegments(jpeg)
  const scanAt = segments.flatMap((s, i) => s.marker === 0xda ? [i] : [])
  const [firstScan, lastScan] = [scanAt[0], scanAt[scanAt.length - 1]]
  const ac = segments[lastScan].segment
  const components = ac[4]
  const refinements = [[0, 10], ...Array.from({ length: 10 }, (_, i) => [10 - i, 9 - i])]
  if (components !== 1 || scans < 1 || scans > 1 + 63 * refinements.length) throw new Error('cannot make that JPEG')
  const acScans = Array.from({ length: scans - 1 }, (_, i) => {
    const scan = Buffer.from(ac)
    const at = 5 + 2 * components // Ss, Se, Ah/Al after the component selectors
    const [ah, al] = refinements[i % refinements.length]
    scan[at] = scan[at + 1] = 1 + Math.floor(i / refinements.length)
    scan[at + 2] = (ah << 4) | al
    return scan
  })
  const tables = segments.slice(firstScan, lastScan).filter((s) => s.marker === 0xc4).map((s) => s.segment)
  return Buffer.concat([jpeg.subarray(0, 2), ...segments.slice(0, firstScan + 1).map((s) => s.segment), ...tables, ...acScans, Buffer.from([0xff, 0xd9])])
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

export function pngChunk (type: string, data: Buffer): Buffer {
  const typeAndData = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(typeAndData))
  return Buffer.concat([length, typeAndData, crc])
}

export function pngHeader (width: number, height: number, bitDepth = 8, colourType = 0): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = bitDepth
  ihdr[9] = colourType
  return pngChunk('IHDR', ihdr)
}

/**
 * A PNG of a few hundred bytes whose header declares `width` x `height`: the IDAT holds zlib-compressed zero
 * rows (`rows` of them), so a decoder that trusts the header allocates the whole image.
 */
export function pngBomb (width: number, height: number, rows = 1): Buffer {
  const rowBytes = Math.min(width, 1 << 20) + 1
  const idat = deflateSync(Buffer.alloc(rowBytes * rows), { level: 9 })
  return Buffer.concat([PNG_SIGNATURE, pngHeader(width, height), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))])
}

/** A small PNG whose compressed data inflates to far more bytes than its declared size needs. */
/** The PNG with `count` zTXt chunks before its IEND, each `inflated` bytes of text once inflated. */
export function pngWithZtxt (png: Buffer, count: number, inflated: number): Buffer {
  const text = pngChunk('zTXt', Buffer.concat([Buffer.from('comment\0\0', 'latin1'), deflateSync(Buffer.alloc(inflated, 0x61), { level: 9 })]))
  const iend = png.length - 12
  return Buffer.concat([png.subarray(0, iend), ...Array<Buffer>(count).fill(text), png.subarray(iend)])
}

/** The PNG with `count` empty unknown ancillary chunks after its header: 12 bytes each, which decoders skip. */
export function pngWithUnknownChunks (png: Buffer, count: number): Buffer {
  const afterHeader = 8 + 12 + png.readUInt32BE(8)
  return Buffer.concat([png.subarray(0, afterHeader), ...Array<Buffer>(count).fill(pngChunk('quIx', Buffer.alloc(0))), png.subarray(afterHeader)])
}

export function pngOverflowingIdat (width: number, height: number, inflatedBytes: number): Buffer {
  const idat = deflateSync(Buffer.alloc(inflatedBytes), { level: 9 })
  return Buffer.concat([PNG_SIGNATURE, pngHeader(width, height), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))])
}

/** Offsets of the chunks of a PNG: [type, offset of the length field, data length]. */
export function pngChunks (bytes: Buffer): Array<{ type: string, offset: number, length: number }> {
  const chunks: Array<{ type: string, offset: number, length: number }> = []
  let offset = 8
  while (offset + 12 <= bytes.length) {
    const length = bytes.readUInt32BE(offset)
    chunks.push({ type: bytes.toString('latin1', offset + 4, offset + 8), offset, length })
    offset += 12 + length
  }
  return chunks
}

/** A 2x2 24-bit BMP (BITMAPINFOHEADER). */
export function bmp (): Buffer {
  const rowBytes = 8
  const header = Buffer.alloc(54)
  header.write('BM', 0, 'latin1')
  header.writeUInt32LE(54 + rowBytes * 2, 2)
  header.writeUInt32LE(54, 10)
  header.writeUInt32LE(40, 14)
  header.writeInt32LE(2, 18)
  header.writeInt32LE(2, 22)
  header.writeUInt16LE(1, 26)
  header.writeUInt16LE(24, 28)
  return Buffer.concat([header, Buffer.alloc(rowBytes * 2, 0x80)])
}

/** An ISO-BMFF `ftyp` box with the given brand, then padding: what HEIC/AVIF files start with. */
export function isoBmff (brand: string): Buffer {
  const ftyp = Buffer.alloc(24)
  ftyp.writeUInt32BE(24, 0)
  ftyp.write('ftyp', 4, 'latin1')
  ftyp.write(brand, 8, 'latin1')
  ftyp.write(`mif1${brand}`, 16, 'latin1')
  return Buffer.concat([ftyp, Buffer.alloc(512)])
}

export const SVG = Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">' +
  '<script>alert(1)</script><rect width="64" height="64"/></svg>')

export const PDF = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>' +
  'endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n')

export const HTML = Buffer.from('<!doctype html><html><body><script>fetch("/predict")</script></body></html>')

/** A minimal empty ZIP archive (end-of-central-directory record only), as appended in polyglots. */
export const ZIP = Buffer.concat([Buffer.from('PK\x05\x06', 'latin1'), Buffer.alloc(18)])

/** A one-entry stored ZIP holding `content` as `name`. */
export function zipWith (name: string, content: Buffer): Buffer {
  const nameBytes = Buffer.from(name)
  const local = Buffer.alloc(30)
  local.writeUInt32LE(0x04034b50, 0)
  local.writeUInt16LE(10, 4)
  local.writeUInt32LE(crc32(content), 14)
  local.writeUInt32LE(content.length, 18)
  local.writeUInt32LE(content.length, 22)
  local.writeUInt16LE(nameBytes.length, 26)
  return Buffer.concat([local, nameBytes, content, ZIP])
}

/** Deterministic pseudo-random bytes (xorshift), so a failing case can be reproduced. */
export function noise (length: number, seed = 0x9e3779b9): Buffer {
  const out = Buffer.alloc(length)
  let x = seed >>> 0
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}
