import { TooManySegmentsError, TooManyScansError } from './errors.js'

/**
 * Scans a JPEG may have. Each scan of a progressive JPEG makes libjpeg go over every block of the image again, and a
 * scan of blocks without detail is a few bytes: a 6000x6000 JPEG of 889 kB in 2,080 scans (each coefficient of each
 * colour in its own scan, refined bit by bit) held a libvips thread for 31 s, and SHARP_CONCURRENCY of them stop every
 * other JPEG and PNG upload; wrapped in a JPEG Baseline DICOM file, a greyscale one of 637 kB in 694 scans held a
 * decoder thread for 12 s. libjpeg-turbo's own tools take a scan limit for this (djpeg -maxscans). Encoders write a
 * few: libjpeg's progressive script 10 for colour and 2 + 4 per component otherwise (18 for CMYK), baseline 1.
 */
export const MAX_JPEG_SCANS = 100

/**
 * Marker segments (metadata, tables) a JPEG may have besides its scans. libjpeg keeps every APP1, APP2 and APP13
 * segment in memory for libvips (EXIF, ICC profile, IPTC), about 190 bytes each even when empty, in libvips' threads,
 * whose freed memory glibc keeps: three 16 MB uploads of 4 million empty APP1, APP2 or APP13 segments took the
 * service from 451 MB to 2.7 GB resident for good, a fourth past PRESSURE_MAX_RSS_BYTES. Encoders write a few dozen
 * at most: an ICC profile fills up to 255 APP2 segments, a progressive scan brings its Huffman tables.
 */
export const MAX_JPEG_SEGMENTS = 1000

const SOS = 0xda
const EOI = 0xd9

/**
 * Refuses a JPEG codestream in more than MAX_JPEG_SCANS scans or MAX_JPEG_SEGMENTS other marker segments, before any
 * decoder sees it (JPEG uploads: step two of the path, inference/image-header.ts; JPEG Baseline DICOM: its codec's
 * frame-header check, inference/dicom/codecs.ts). Segments are counted up to EOI as libjpeg reads them: header
 * segments are skipped by their length, and in entropy-coded data 0xFF is a marker only when neither a stuffed zero
 * nor a restart marker follows it.
 */
export function checkJpegStructure (codestream: Uint8Array): void {
  let scans = 0
  let segments = 0
  let at = 2 // after SOI
  while ((at = codestream.indexOf(0xff, at)) !== -1 && at + 1 < codestream.length) {
    const marker = codestream[at + 1]
    if (marker === 0xff) { at += 1; continue } // fill byte
    if (marker === 0x00 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { at += 2; continue }
    if (marker === EOI) return
    if (marker === SOS && ++scans > MAX_JPEG_SCANS) throw new TooManyScansError(MAX_JPEG_SCANS)
    if (marker !== SOS && ++segments > MAX_JPEG_SEGMENTS) throw new TooManySegmentsError(MAX_JPEG_SEGMENTS)
    if (at + 4 > codestream.length) return
    at += 2 + (codestream[at + 2] << 8 | codestream[at + 3])
  }
}
