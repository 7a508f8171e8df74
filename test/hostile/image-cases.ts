import sharp, { type Sharp } from 'sharp'
import {
  HTML, PDF, SVG, ZIP, bmp, flipBit, isoBmff, jpegEntropyRange, jpegInScans, jpegSegments, jpegWithDimensions, jpegWithEmptySegments, noise, pngBomb,
  pngChunks, pngOverflowingIdat, pngWithUnknownChunks, pngWithZtxt, truncate, zipWith
} from './craft.js'
import { MAX_PNG_CHUNKS } from '../../inference/image-header.js'
import { ACCEPTED, BLANK, CORRUPT, DECODED_OR_CORRUPT, TOO_LARGE, TOO_MANY_SCANS, TOO_MANY_SEGMENTS, TOO_MANY_TEXT_CHUNKS, TOO_MANY_CHUNKS, UNSUPPORTED, type FileCase, type Outcome, type Sources } from './types.js'

/** Cut-off points: the first bytes (magic, headers) and fractions of the whole file (entropy data, trailer). */
function cutOffsets (length: number): number[] {
  const fixed = [1, 2, 3, 4, 7, 8, 12, 20, 33, 64, 150, 400]
  const fractions = [0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97, 0.995].map((f) => Math.floor(length * f))
  return [...new Set([...fixed, ...fractions, length - 2, length - 1])].filter((n) => n > 0 && n < length).sort((a, b) => a - b)
}

/** Cut inside the final 12-byte IEND chunk, every pixel is still there: a decoder may accept it. */
function pngCutExpectation (length: number, full: number): Outcome[] {
  if (length < 8) return UNSUPPORTED
  return length > full - 12 ? [...ACCEPTED, ...CORRUPT] : CORRUPT
}

/** JPEG and PNG truncated at many offsets: too short to sniff is 415, anything else is refused as 422. */
function truncated (jpeg: Buffer, png: Buffer, label: string): FileCase[] {
  const cases: FileCase[] = []
  for (const length of cutOffsets(jpeg.length)) {
    cases.push({ category: 'truncated', name: `${label} JPEG truncated to ${length} of ${jpeg.length} bytes`,
      data: truncate(jpeg, length), filename: 'slice.jpg', expected: length < 3 ? UNSUPPORTED : CORRUPT })
  }
  for (const length of cutOffsets(png.length)) {
    cases.push({ category: 'truncated', name: `${label} PNG truncated to ${length} of ${png.length} bytes`,
      data: truncate(png, length), filename: 'slice.png', contentType: 'image/png', expected: pngCutExpectation(length, png.length) })
  }
  return cases
}

/**
 * Single bit flips after the magic bytes: in headers (tables, dimensions, chunk CRCs) and in the compressed
 * data. A decoder may still produce pixels (200) or refuse (422); it must never crash or answer 5xx.
 */
function bitFlips (jpeg: Buffer, png: Buffer): FileCase[] {
  const cases: FileCase[] = []
  const segments = jpegSegments(jpeg).filter((s) => s.marker !== 0xda)
  for (const [i, segment] of segments.entries()) {
    for (const at of [4, 5, 7, 9]) {
      const offset = segment.offset + Math.min(at, segment.length + 1)
      cases.push({ category: 'bit-flip', name: `JPEG header flip in segment FF${segment.marker.toString(16)} #${i} byte ${offset}`,
        data: flipBit(jpeg, offset, (offset + i) % 8), expected: DECODED_OR_CORRUPT })
    }
  }
  const entropy = jpegEntropyRange(jpeg)
  for (let k = 0; k < 16; k++) {
    const offset = entropy.start + Math.floor((entropy.end - entropy.start) * (k + 0.5) / 16)
    cases.push({ category: 'bit-flip', name: `JPEG entropy-data flip at byte ${offset}`,
      data: flipBit(jpeg, offset, k % 8), expected: DECODED_OR_CORRUPT })
  }
  for (const chunk of pngChunks(png)) {
    const positions = chunk.type === 'IDAT' ? [12, 8 + Math.floor(chunk.length / 2), 7 + chunk.length] : [8, 11, 8 + chunk.length]
    for (const offset of new Set(positions.map((position) => chunk.offset + Math.min(position, chunk.length + 11)))) {
      cases.push({ category: 'bit-flip', name: `PNG ${chunk.type} flip at byte ${offset}`, filename: 'slice.png',
        data: flipBit(png, offset, offset % 8), expected: DECODED_OR_CORRUPT })
    }
  }
  return cases
}

/** Formats that are not JPEG or PNG, whatever their name says: 415. */
async function otherFormats (jpeg: Buffer): Promise<FileCase[]> {
  const small = sharp(jpeg).resize(64)
  const made: Array<[string, Buffer]> = [
    ['GIF', await small.clone().gif().toBuffer()],
    ['WebP', await small.clone().webp().toBuffer()],
    ['lossless WebP', await small.clone().webp({ lossless: true }).toBuffer()],
    ['TIFF', await small.clone().tiff().toBuffer()],
    ['AVIF', await small.clone().avif().toBuffer()],
    ['BMP', bmp()],
    ['SVG with script', SVG],
    ['PDF', PDF],
    ['HEIC-looking ftyp', isoBmff('heic')],
    ['big-endian TIFF header', Buffer.concat([Buffer.from('MM\x00\x2a', 'latin1'), noise(200)])],
    ['ICO header', Buffer.concat([Buffer.from([0, 0, 1, 0, 1, 0]), noise(100)])],
    ['Photoshop header', Buffer.concat([Buffer.from('8BPS', 'latin1'), noise(100)])],
    ['JPEG XL codestream', Buffer.concat([Buffer.from([0xff, 0x0a]), noise(100)])],
    ['JPEG 2000 signature', Buffer.concat([Buffer.from('0000000c6a5020200d0a870a', 'hex'), noise(100)])]
  ]
  return made.map(([format, data]) => ({ category: 'other-format', name: `${format} named .jpg`, data, expected: UNSUPPORTED }))
}

/** Content that is not an image at all under an image name, and images whose magic bytes were damaged. */
function wrongMagic (jpeg: Buffer, png: Buffer): FileCase[] {
  const named = (name: string, data: Buffer, filename: string): FileCase =>
    ({ category: 'wrong-magic', name, data, filename, expected: UNSUPPORTED })
  return [
    named('text file named .jpg', Buffer.from('this is not an image\n'), 'slice.jpg'),
    named('HTML named .png', HTML, 'slice.png'),
    named('ZIP named .jpg', zipWith('slice.jpg', jpeg), 'slice.jpg'),
    named('ELF header named .jpg', Buffer.concat([Buffer.from('\x7fELF', 'latin1'), noise(256)]), 'slice.jpg'),
    named('random bytes named .png', noise(4096, 7), 'slice.png'),
    named('JPEG with first byte zeroed', Buffer.concat([Buffer.from([0]), jpeg.subarray(1)]), 'slice.jpg'),
    named('JPEG with SOI but no marker after it', Buffer.concat([Buffer.from([0xff, 0xd8, 0x00]), jpeg.subarray(3)]), 'slice.jpg'),
    named('PNG with damaged signature', Buffer.concat([Buffer.from('\x89PNX', 'latin1'), png.subarray(4)]), 'slice.png'),
    named('PNG without its signature', png.subarray(8), 'slice.png'),
    named('HTML, then a JPEG', Buffer.concat([HTML, jpeg]), 'slice.jpg'),
    named('UTF-8 BOM, then a PNG', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), png]), 'slice.png')
  ]
}

/** Valid images with appended archives or markup: the image is what gets decoded (200). */
function polyglots (jpeg: Buffer, png: Buffer): FileCase[] {
  const ok = (name: string, data: Buffer, filename = 'slice.jpg'): FileCase =>
    ({ category: 'polyglot', name, data, filename, expected: ACCEPTED })
  return [
    ok('JPEG + appended ZIP', Buffer.concat([jpeg, zipWith('payload.html', HTML)])),
    ok('JPEG + appended HTML', Buffer.concat([jpeg, HTML])),
    ok('JPEG + appended PDF', Buffer.concat([jpeg, PDF])),
    ok('PNG + appended ZIP', Buffer.concat([png, ZIP]), 'slice.png'),
    ok('PNG + appended HTML', Buffer.concat([png, HTML]), 'slice.png'),
    ok('PNG + appended JPEG', Buffer.concat([png, jpeg]), 'slice.png')
  ]
}

/** Decompression bombs: headers declaring more pixels than the limit are refused before decoding (422). */
function bombs (jpeg: Buffer, png: Buffer, maxPixels: number): FileCase[] {
  const over = Math.ceil(Math.sqrt(maxPixels * 1.2))
  const under = Math.floor(Math.sqrt(maxPixels * 0.8))
  const bomb = (name: string, data: Buffer, expected = TOO_LARGE, filename = 'slice.png'): FileCase =>
    ({ category: 'bomb', name, data, filename, expected })
  return [
    bomb('PNG header declaring 100000x100000', pngBomb(100_000, 100_000)),
    bomb('PNG header declaring 65535x65535', pngBomb(65_535, 65_535)),
    bomb('PNG header declaring 2^31-1 x 1', pngBomb(2 ** 31 - 1, 1), [...TOO_LARGE, ...CORRUPT]),
    bomb(`PNG header declaring 1 x ${maxPixels + 1}`, pngBomb(1, maxPixels + 1)),
    bomb(`PNG header declaring ${over}x${over}`, pngBomb(over, over)),
    bomb('JPEG header declaring 65500x65500', jpegWithDimensions(jpeg, 65_500, 65_500), TOO_LARGE, 'slice.jpg'),
    bomb(`JPEG header declaring ${over}x${over}`, jpegWithDimensions(jpeg, over, over), TOO_LARGE, 'slice.jpg'),
    bomb(`complete ${over}x${over} black PNG (highly compressible)`, pngBomb(over, over, over)),
    bomb(`complete ${under}x${under} black PNG, under the pixel limit`, pngBomb(under, under, under), BLANK),
    bomb('16x16 PNG whose data inflates to 64 MB', pngOverflowingIdat(16, 16, 64 * 1024 * 1024), [...BLANK, ...CORRUPT, ...TOO_LARGE]),
    // libjpeg keeps each APP1/APP2/APP13 segment in memory: millions of empty ones took gigabytes (MAX_JPEG_SEGMENTS)
    bomb('JPEG with 900 empty APP2 segments', jpegWithEmptySegments(jpeg, 0xe2, 900), ACCEPTED, 'slice.jpg'),
    bomb('JPEG with 100,000 empty APP2 segments', jpegWithEmptySegments(jpeg, 0xe2, 100_000), TOO_MANY_SEGMENTS, 'slice.jpg'),
    // libpng inflates each compressed text chunk (up to 8 MB) and keeps up to 1000: gigabytes while decoding
    bomb('PNG with 16 zTXt chunks of 1 MB of text', pngWithZtxt(png, 16, 1_000_000), ACCEPTED),
    bomb('PNG with 2,000 zTXt chunks of 7 MB of text', pngWithZtxt(png, 2000, 7_000_000), TOO_MANY_TEXT_CHUNKS),
    // Each chunk header is read on the event loop, where every other request waits (inference/image-header.ts).
    bomb(`PNG of ${MAX_PNG_CHUNKS} chunks in all, empty unknown ones added`, pngWithUnknownChunks(png, MAX_PNG_CHUNKS - pngChunks(png).length), ACCEPTED),
    bomb(`PNG of ${MAX_PNG_CHUNKS + 1} chunks in all, empty unknown ones added`, pngWithUnknownChunks(png, MAX_PNG_CHUNKS + 1 - pngChunks(png).length), TOO_MANY_CHUNKS)
  ]
}

/** A valid progressive 64x64 greyscale JPEG in `scans` scans, each after the first a few bytes (craft.ts jpegInScans). */
export async function progressiveInScans (scans: number): Promise<Buffer> {
  const side = 64
  const pixels = Buffer.alloc(side * side)
  // one grey level per 8x8 block: no AC coefficient, so each further scan is a few bytes
  for (let i = 0; i < pixels.length; i++) pixels[i] = 40 + ((((i / side) >> 3) * 8 + ((i % side) >> 3)) * 37) % 160
  const grey = sharp(pixels, { raw: { width: side, height: side, channels: 1 } }).toColourspace('b-w')
  return jpegInScans(await grey.jpeg({ progressive: true }).toBuffer(), scans)
}

/**
 * Decoding-time bombs: valid progressive JPEGs whose scans each make libjpeg go over the whole image again. Beyond
 * MAX_JPEG_SCANS (100) they are refused before decoding; one at the limit is classified.
 */
async function scanFloods (): Promise<FileCase[]> {
  return await Promise.all(([[100, ACCEPTED], [101, TOO_MANY_SCANS], [694, TOO_MANY_SCANS]] as const).map(async ([scans, expected]) =>
    ({ category: 'bomb' as const, name: `progressive JPEG in ${scans} scans`, data: await progressiveInScans(scans), filename: 'slice.jpg', expected })))
}

/** Valid JPEG/PNG variants a scanner or PACS export may produce: all classified (200), but a blank 1x1 image. */
async function validVariants (sources: Sources): Promise<FileCase[]> {
  const src = sources.slices[0]
  const png = (image: Sharp): Promise<Buffer> => image.png().toBuffer()
  const made: Array<[string, Buffer, string]> = [
    ['CMYK JPEG', await sharp(src).toColourspace('cmyk').jpeg().toBuffer(), 'slice.jpg'],
    ['progressive JPEG', await sharp(src).jpeg({ progressive: true }).toBuffer(), 'slice.jpg'],
    ['4:4:4 RGB JPEG', await sharp(src).toColourspace('srgb').jpeg({ chromaSubsampling: '4:4:4' }).toBuffer(), 'slice.jpg'],
    ['mozjpeg-optimised JPEG', await sharp(src).jpeg({ mozjpeg: true }).toBuffer(), 'slice.jpg'],
    ['EXIF-rotated JPEG (orientation 6)', await sharp(src).jpeg().withMetadata({ orientation: 6 }).toBuffer(), 'slice.jpg'],
    ['16-bit greyscale PNG', await png(sharp(src).toColourspace('grey16')), 'slice.png'],
    ['16-bit RGB PNG', await png(sharp(src).toColourspace('rgb16')), 'slice.png'],
    ['palette PNG', await sharp(src).png({ palette: true }).toBuffer(), 'slice.png'],
    ['1-bit palette PNG', await sharp(src).png({ palette: true, colours: 2 }).toBuffer(), 'slice.png'],
    ['RGBA PNG with half-transparent alpha', await png(sharp(src).toColourspace('srgb').ensureAlpha(0.5)), 'slice.png'],
    ['greyscale + alpha PNG', await png(sharp(src).greyscale().ensureAlpha()), 'slice.png'],
    ['interlaced (Adam7) PNG', await sharp(src).png({ progressive: true }).toBuffer(), 'slice.png']
  ]
  const cases: FileCase[] = made.map(([name, data, filename]) => ({ category: 'valid-variant', name, data, filename, expected: ACCEPTED }))
  // Valid files, but one pixel is one grey level: nothing to classify.
  cases.push({ category: 'valid-variant', name: '1x1 JPEG', data: await sharp(src).resize(1, 1).jpeg().toBuffer(), filename: 'slice.jpg', expected: BLANK },
    { category: 'valid-variant', name: '1x1 PNG', data: await png(sharp(src).resize(1, 1)), filename: 'slice.png', expected: BLANK })
  for (const [i, data] of [...sources.slices, ...sources.originals].entries()) {
    cases.push({ category: 'valid-variant', name: `untouched ct-kidney file #${i}`, data, expected: ACCEPTED })
  }
  return cases
}

/** Every hostile or unusual file, each sent alone in the `file` field. */
export async function fileCases (sources: Sources, maxPixels: number): Promise<FileCase[]> {
  const [jpeg, other] = sources.slices
  const png = await sharp(jpeg).png().toBuffer()
  const otherPng = await sharp(other).png().toBuffer()
  const original = sources.originals[0]
  return [
    ...truncated(jpeg, png, 'slice'),
    ...truncated(original, otherPng, 'original'),
    ...bitFlips(jpeg, png),
    ...wrongMagic(jpeg, png),
    ...polyglots(jpeg, png),
    ...await otherFormats(jpeg),
    ...bombs(jpeg, png, maxPixels),
    ...await scanFloods(),
    ...await validVariants(sources)
  ]
}
