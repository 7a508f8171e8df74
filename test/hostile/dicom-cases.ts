import { readFile } from 'node:fs/promises'
import { constants, deflateRawSync } from 'node:zlib'
import dicomParser from 'dicom-parser'
import sharp from 'sharp'
import { encodeJ2KLossless } from '../helpers/dicom-encoders.js'
import { DEFLATED_EXPLICIT_LITTLE_ENDIAN, imageAttributes, part10Header, pixelData, writeDicom, type SyntheticDicom } from '../helpers/dicom-writer.js'
import { jpegWithDimensions, noise } from './craft.js'
import { progressiveInScans } from './image-cases.js'
import { ACCEPTED, BLANK, CORRUPT_DICOM, DECODE_TIMEOUT, DICOM_TOO_LARGE, TOO_LARGE, TOO_MANY_SCANS, type Category, type FileCase, type Outcome } from './types.js'

/**
 * DICOM payload families that took the service down before the decoders got budgets and worker threads (issue 19),
 * all made at run time from the shared real files (nothing binary is committed): deflate bombs of growing ratio,
 * codestreams larger than their header (JPEG-LS, JPEG 2000, JPEG), RLE at and past the pixel budget, sequences
 * nested deep, and a flood of tiny elements. `maxPixels` must be the server's MAX_PIXELS.
 */
export const DICOM_CATEGORIES: Category[] = ['deflate-bomb', 'codestream-size', 'rle-budget', 'deep-nesting', 'element-flood']

const SHARED_DICOM = new URL('../../../shared/data/dicom/', import.meta.url).pathname
const MiB = 1024 * 1024
const JPEG_LS = '1.2.840.10008.1.2.4.80'
const JPEG_2000 = '1.2.840.10008.1.2.4.90'
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50'
const RLE = '1.2.840.10008.1.2.5'

const small: SyntheticDicom = { rows: 16, columns: 16, bitsAllocated: 16, signed: true, rescaleIntercept: -1024, values: Array.from({ length: 256 }, (_, i) => 1000 + 8 * (i % 16)) }

function dicomCase (category: Category, name: string, data: Buffer, expected: Outcome[]): FileCase {
  return { category, name, data, filename: 'slice.dcm', contentType: 'application/dicom', expected }
}

/** An element header of explicit VR little endian with a 32-bit length (OB, OW, SQ, UN). */
function longHeader (group: number, elem: number, vr: 'OB' | 'OW' | 'SQ', length: number): Buffer {
  const head = Buffer.alloc(12)
  head.writeUInt16LE(group, 0); head.writeUInt16LE(elem, 2); head.write(vr, 4, 'latin1'); head.writeUInt32LE(length, 8)
  return head
}

/** 1 MiB in which about `density` of the bytes are random and the rest zero: the lower, the better it compresses. */
function sparseNoise (density: number): Buffer {
  const values = noise(MiB, 0x1234567)
  const chance = noise(MiB, 0x7654321)
  return Buffer.from(values.map((value, i) => chance[i] < density * 256 ? value : 0))
}

/**
 * A deflated Part 10 file whose data set is `before`, then `runBytes` made of `chunk` repeated, then `after`. The run
 * is deflated once per chunk as an independent full-flush segment and repeated, so a file that inflates to gigabytes
 * takes milliseconds to make and never exists uncompressed.
 */
function deflatedBomb (before: Buffer, chunk: Buffer, runBytes: number, after: Buffer): { file: Buffer, ratio: number } {
  const segment = deflateRawSync(chunk, { finishFlush: constants.Z_FULL_FLUSH, level: 9 })
  const repeats = Math.floor(runBytes / chunk.length)
  const file = Buffer.concat([
    part10Header(DEFLATED_EXPLICIT_LITTLE_ENDIAN),
    deflateRawSync(before, { finishFlush: constants.Z_FULL_FLUSH }),
    ...Array.from({ length: repeats }, () => segment),
    deflateRawSync(after)
  ])
  return { file, ratio: Math.round((before.length + repeats * chunk.length + after.length) / file.length) }
}

function deflateBombs (): FileCase[] {
  const cases: FileCase[] = []
  // Growing ratio and size: a private element before the Pixel Data that inflates to tens of MiB .. 4 GiB.
  for (const [density, runBytes] of [[0.04, 64 * MiB], [0.003, 512 * MiB], [0, 4096 * MiB - 2 * MiB]] as const) {
    const privateElement = longHeader(0x0029, 0x1010, 'OB', runBytes)
    const { file, ratio } = deflatedBomb(Buffer.concat([imageAttributes(small), privateElement]), sparseNoise(density), runBytes, pixelData(small))
    cases.push(dicomCase('deflate-bomb', `deflated, ${runBytes / MiB} MiB private element before the pixels (ratio ${ratio}:1, ${file.length} bytes)`, file, DICOM_TOO_LARGE))
  }
  const slice: SyntheticDicom = { rows: 512, columns: 512, bitsAllocated: 16, signed: true }
  const zeros = Buffer.alloc(MiB)
  const longPixels = deflatedBomb(Buffer.concat([imageAttributes(slice), longHeader(0x7fe0, 0x0010, 'OW', 0xfffffff0)]), zeros, 1024 * MiB, Buffer.alloc(0))
  cases.push(dicomCase('deflate-bomb', `deflated, 512x512 header, Pixel Data declaring 4 GiB (ratio ${longPixels.ratio}:1)`, longPixels.file, DICOM_TOO_LARGE))
  const trailer = deflatedBomb(Buffer.concat([imageAttributes(slice), pixelData({ ...slice, values: new Array(512 * 512).fill(0) }), longHeader(0xfffc, 0xfffc, 'OB', 1024 * MiB)]),
    zeros, 1024 * MiB, Buffer.alloc(0))
  cases.push(dicomCase('deflate-bomb', `deflated, 512x512 slice followed by 1 GiB of padding (ratio ${trailer.ratio}:1)`, trailer.file, DICOM_TOO_LARGE))
  const huge: SyntheticDicom = { rows: 20000, columns: 20000, bitsAllocated: 16, signed: true }
  const hugeHeader = deflatedBomb(Buffer.concat([imageAttributes(huge), longHeader(0x7fe0, 0x0010, 'OW', 800_000_000)]), zeros, 800 * MiB, Buffer.alloc(0))
  cases.push(dicomCase('deflate-bomb', `deflated, header declaring 20000x20000 pixels (ratio ${hugeHeader.ratio}:1)`, hugeHeader.file, TOO_LARGE))
  return cases
}

/** The compressed frame of a single-frame encapsulated file (the shared JPEG-LS slice). */
function firstFrame (bytes: Buffer): Buffer {
  const dataSet = dicomParser.parseDicom(bytes)
  const pixels = dataSet.elements.x7fe00010
  return Buffer.from(dicomParser.readEncapsulatedPixelDataFromFragments(dataSet, pixels, 0, pixels.fragments?.length))
}

/** A copy of a JPEG or JPEG-LS codestream whose first frame header (SOFn or SOF55) declares another size. */
function withSofSize (codestream: Buffer, marker: number, width: number, height: number): Buffer {
  const copy = Buffer.from(codestream)
  const at = copy.indexOf(Buffer.from([0xff, marker]))
  copy.writeUInt16BE(height, at + 5)
  copy.writeUInt16BE(width, at + 7)
  return copy
}

/** A copy of a JPEG 2000 codestream whose SIZ segment declares another size (or tile size). */
function withSiz (codestream: Buffer, change: { width?: number, height?: number, tile?: number }): Buffer {
  const copy = Buffer.from(codestream)
  if (change.width !== undefined) copy.writeUInt32BE(change.width, 8)
  if (change.height !== undefined) copy.writeUInt32BE(change.height, 12)
  if (change.tile !== undefined) { copy.writeUInt32BE(change.tile, 24); copy.writeUInt32BE(change.tile, 28) }
  return copy
}

async function codestreamSizes (): Promise<FileCase[]> {
  const jpegLsFile = await readFile(SHARED_DICOM + 'ct1-unc-jpeg-ls.dcm')
  const jpegLs = firstFrame(jpegLsFile)
  const slice = { rows: 512, columns: 512, bitsAllocated: 16 as const, signed: true, rescaleIntercept: -1024 }
  const gradient = Uint16Array.from({ length: 512 * 512 }, (_, i) => (i * 7) % 4096)
  const j2k = await encodeJ2KLossless(gradient, 512, 512)
  const j2kImage = { rows: 512, columns: 512, bitsAllocated: 16 as const, signed: false }
  const square = await sharp({ create: { width: 40, height: 40, channels: 3, background: '#c0c0c0' } }).png().toBuffer()
  const grey = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#404040' } })
    .composite([{ input: square, left: 130, top: 80 }]).toColourspace('b-w').jpeg().toBuffer()
  const jpegImage = { rows: 200, columns: 300, bitsAllocated: 8 as const, signed: false }
  const progressiveImage = { ...jpegImage, rows: 64, columns: 64 }
  const encapsulated = (transferSyntaxUid: string, image: SyntheticDicom, encapsulatedFragment: Buffer): Buffer =>
    writeDicom({ ...image, transferSyntaxUid, encapsulatedFragment })
  const sized = (name: string, data: Buffer, expected: Outcome[]): FileCase => dicomCase('codestream-size', name, data, expected)
  return [
    sized('JPEG-LS slice as shared (control)', jpegLsFile, ACCEPTED),
    sized('JPEG-LS codestream declaring 20000x20000, header 512x512', encapsulated(JPEG_LS, slice, withSofSize(jpegLs, 0xf7, 20000, 20000)), TOO_LARGE),
    sized('JPEG-LS codestream 512x512, header 16x16', encapsulated(JPEG_LS, { ...slice, rows: 16, columns: 16 }, jpegLs), CORRUPT_DICOM),
    sized('JPEG-LS codestream declaring 600x600, header 512x512', encapsulated(JPEG_LS, slice, withSofSize(jpegLs, 0xf7, 600, 600)), CORRUPT_DICOM),
    sized('JPEG 2000 codestream as encoded (control)', encapsulated(JPEG_2000, j2kImage, j2k), ACCEPTED),
    sized('JPEG 2000 codestream declaring 20000x20000 in one tile, header 512x512',
      encapsulated(JPEG_2000, j2kImage, withSiz(j2k, { width: 20000, height: 20000, tile: 20000 })), TOO_LARGE),
    sized('JPEG 2000 codestream 512x512, header 16x16', encapsulated(JPEG_2000, { ...j2kImage, rows: 16, columns: 16 }, j2k), CORRUPT_DICOM),
    sized('JPEG 2000 codestream of 262,144 tiles of 1x1', encapsulated(JPEG_2000, j2kImage, withSiz(j2k, { tile: 1 })), CORRUPT_DICOM),
    sized('JPEG baseline codestream as encoded (control)', encapsulated(JPEG_BASELINE, jpegImage, grey), ACCEPTED),
    sized('JPEG baseline codestream declaring 20000x20000, header 300x200', encapsulated(JPEG_BASELINE, jpegImage, jpegWithDimensions(grey, 20000, 20000)), TOO_LARGE),
    sized('JPEG baseline codestream 300x200, header 16x16', encapsulated(JPEG_BASELINE, { ...jpegImage, rows: 16, columns: 16 }, grey), CORRUPT_DICOM),
    // libjpeg-turbo decodes progressive JPEG under the Baseline syntax too, each scan over the whole frame again
    sized('JPEG baseline codestream in 100 progressive scans', encapsulated(JPEG_BASELINE, progressiveImage, await progressiveInScans(100)), ACCEPTED),
    sized('JPEG baseline codestream in 694 progressive scans', encapsulated(JPEG_BASELINE, progressiveImage, await progressiveInScans(694)), TOO_MANY_SCANS)
  ]
}

/** DICOM RLE of a constant 16-bit frame: two segments of 128-sample replicate runs, written directly (no encoder pass). */
function constantRle (pixels: number, value: number): Buffer {
  const segment = (byte: number): Buffer => {
    const runs: number[] = []
    for (let left = pixels; left > 0; left -= 128) {
      const run = Math.min(128, left)
      if (run === 1) runs.push(0, byte)
      else runs.push(257 - run, byte)
    }
    if (runs.length % 2 === 1) runs.push(0x80)
    return Buffer.from(runs)
  }
  const high = segment(value >> 8)
  const low = segment(value & 0xff)
  const header = Buffer.alloc(64)
  header.writeUInt32LE(2, 0)
  header.writeUInt32LE(64, 4)
  header.writeUInt32LE(64 + high.length, 8)
  return Buffer.concat([header, high, low])
}

function rleBudget (maxPixels: number): FileCase[] {
  const rows = Math.floor(Math.sqrt(maxPixels))
  const columns = Math.floor(maxPixels / rows)
  const image = (r: number, c: number): SyntheticDicom => ({ rows: r, columns: c, bitsAllocated: 16, signed: false, rescaleIntercept: -1024, transferSyntaxUid: RLE })
  const lying = constantRle(16 * 16, 1000)
  lying.writeUInt32LE(lying.length + 4096, 8)
  return [
    dicomCase('rle-budget', `RLE ${columns}x${rows}, at the pixel budget of ${maxPixels}`, writeDicom({ ...image(rows, columns), encapsulatedFragment: constantRle(rows * columns, 1064) }), BLANK),
    dicomCase('rle-budget', `RLE ${columns + 1}x${rows}, past the pixel budget`, writeDicom({ ...image(rows, columns + 1), encapsulatedFragment: constantRle(rows * (columns + 1), 1064) }), TOO_LARGE),
    dicomCase('rle-budget', 'RLE segment table pointing past the frame', writeDicom({ ...image(16, 16), encapsulatedFragment: lying }), CORRUPT_DICOM)
  ]
}

/** A sequence nested `depth` levels deep, every level of undefined length (explicit VR little endian). */
function nestedSequence (depth: number): Buffer {
  const open = Buffer.concat([longHeader(0x0040, 0xa730, 'SQ', 0xffffffff), Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff])])
  const close = Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0, 0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])
  return Buffer.concat([Buffer.alloc(open.length * depth).fill(open), Buffer.alloc(close.length * depth).fill(close)])
}

function deepNesting (): FileCase[] {
  const nested = (depth: number, transferSyntaxUid?: string): Buffer => writeDicom({ ...small, transferSyntaxUid, extraElements: [nestedSequence(depth)] })
  return [
    dicomCase('deep-nesting', 'sequences nested 64 deep (control)', nested(64), ACCEPTED),
    dicomCase('deep-nesting', 'sequences nested 20,000 deep', nested(20_000), CORRUPT_DICOM),
    dicomCase('deep-nesting', 'sequences nested 200,000 deep', nested(200_000), CORRUPT_DICOM),
    dicomCase('deep-nesting', 'deflated, sequences nested 200,000 deep', nested(200_000, DEFLATED_EXPLICIT_LITTLE_ENDIAN), [...CORRUPT_DICOM, ...DICOM_TOO_LARGE])
  ]
}

/**
 * A million empty private elements: each one an object in the parser, each a few bytes in the file. Bounded by the
 * decoder thread's heap (out of memory: DICOM_TOO_LARGE) or by DECODE_TIMEOUT_MS when the collector thrashes near it;
 * under a larger heap limit it may simply be decoded.
 */
function elementFlood (): FileCase[] {
  const count = 1_000_000
  const flood = Buffer.alloc(count * 8)
  for (let i = 0; i < count; i++) {
    const at = i * 8
    flood.writeUInt16LE(0x0029 + 2 * Math.floor(i / 0xf000), at) // odd (private) groups after 0028
    flood.writeUInt16LE(0x1000 + (i % 0xf000), at + 2)
    flood.write('LO', at + 4, 'latin1')
  }
  return [dicomCase('element-flood', `${count.toLocaleString('en')} empty private elements`, writeDicom({ ...small, extraElements: [flood] }),
    [...ACCEPTED, ...DICOM_TOO_LARGE, ...DECODE_TIMEOUT])]
}

export async function dicomFileCases (maxPixels: number): Promise<FileCase[]> {
  return [...deflateBombs(), ...await codestreamSizes(), ...rleBudget(maxPixels), ...deepNesting(), ...elementFlood()]
}
