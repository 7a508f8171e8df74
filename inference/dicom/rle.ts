import type { DecodedFrame, FrameGeometry } from './codestream.js'
import { CorruptDicomError } from './errors.js'

/**
 * DICOM RLE Lossless (PS3.5 Annex G): a 64-byte header of 16 little-endian uint32 (segment count, then
 * segment offsets, checked by `readRleFrameHeader` before this runs), one PackBits segment per byte plane, most
 * significant byte first. No maintained RLE decoder runs on Node 20 (dcmjs needs Node 22), and the format is this small.
 */
export function decodeRle (encoded: Uint8Array, image: FrameGeometry): DecodedFrame {
  const pixels = image.rows * image.columns
  const bytesPerSample = image.bitsAllocated / 8
  const view = new DataView(encoded.buffer, encoded.byteOffset, encoded.byteLength)
  const segments = view.getUint32(0, true)
  if (segments !== bytesPerSample) throw new CorruptDicomError(`RLE has ${segments} segments, ${bytesPerSample} expected for one greyscale sample`)

  const out = new Uint8Array(pixels * bytesPerSample)
  for (let segment = 0; segment < segments; segment++) {
    const start = view.getUint32(4 + segment * 4, true)
    const end = segment + 1 < segments ? view.getUint32(8 + segment * 4, true) : encoded.length
    // Segment 0 holds the most significant bytes; the output is little endian.
    const byteIndex = bytesPerSample - 1 - segment
    let read = start
    let written = 0
    while (written < pixels && read < end) {
      const control = (encoded[read++] << 24) >> 24
      if (control >= 0) {
        for (let i = 0; i <= control && written < pixels; i++) out[(written++) * bytesPerSample + byteIndex] = encoded[read++]
      } else if (control !== -128) {
        const value = encoded[read++]
        for (let i = 0; i < 1 - control && written < pixels; i++) out[(written++) * bytesPerSample + byteIndex] = value
      }
    }
    if (written < pixels) throw new CorruptDicomError(`RLE segment ${segment + 1} ends after ${written} of ${pixels} pixels`)
  }
  return { bytes: out, width: image.columns, height: image.rows, bitsPerSample: image.bitsAllocated, components: 1 }
}
