// The package names a types file it does not ship; our declaration, referenced so every program that reaches this file has it (tsconfig.image.json includes only the entry points).
/// <reference path="./jpeg-lossless-decoder-js.d.ts" />
import { Decoder } from 'jpeg-lossless-decoder-js'
import type { DecodedFrame, FrameGeometry } from './codestream.js'
import { CorruptDicomError } from './errors.js'

/** SOF3, lossless sequential Huffman (ISO 10918-1 H): what transfer syntaxes .57 and .70 (selection value 1) carry. */
export const JPEG_LOSSLESS_SOF = new Set([0xc3])

/**
 * Predictor 7, (Ra + Rb) / 2, in integers as ISO 10918-1 H.1.2.1 has it (a right shift). The package divides in
 * floating point, and its `& 0xffff` then truncates a negative half towards zero: one grey level off wherever the
 * sum is odd and the reconstructed value wraps (CT1 with +sv 7: 136 pixels differed from dcmtk's dcmdjpeg).
 */
class ConformingDecoder extends Decoder {
  override select7 (compOffset?: number): number {
    return (this.getPreviousX(compOffset) + this.getPreviousY(compOffset)) >> 1
  }
}

/** EOI (FFD9) at the end, allowing the zero byte that pads a fragment to even length (and a few more). */
function endsWithEoi (encoded: Uint8Array): boolean {
  let end = encoded.length
  while (end > 2 && encoded.length - end < 4 && encoded[end - 1] === 0) end--
  return end >= 2 && encoded[end - 2] === 0xff && encoded[end - 1] === 0xd9
}

/**
 * One JPEG Lossless frame (process 14, any predictor) through jpeg-lossless-decoder-js, a maintained pure
 * JavaScript decoder (the one Cornerstone uses). The frame header has been checked against the DICOM header first
 * (codecs.ts), so the output it allocates is the size the header accounts for. Samples come back in one byte up to
 * 8 bits, else two bytes in the platform's order (little endian on every machine Node runs on here).
 */
export function decodeJpegLossless (encoded: Uint8Array, geometry: FrameGeometry): DecodedFrame {
  // The decoder reads past a cut codestream as if zeros followed and returns an image: a cut is found here instead.
  if (!endsWithEoi(encoded)) throw new CorruptDicomError('the JPEG Lossless codestream is truncated (it does not end with EOI)')
  const bytesPerSample = geometry.bitsAllocated <= 8 ? 1 : 2
  try {
    const decoder = new ConformingDecoder()
    const samples = decoder.decode(encoded.buffer as ArrayBuffer, encoded.byteOffset, encoded.byteLength, bytesPerSample)
    return {
      bytes: new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength),
      width: decoder.xDim,
      height: decoder.yDim,
      bitsPerSample: decoder.precision ?? geometry.bitsAllocated,
      components: decoder.numComp
    }
  } catch {
    // The decoder throws Errors in its own words (and TypeErrors on damaged streams): the caller gets ours.
    throw new CorruptDicomError('the JPEG Lossless pixel data could not be decoded')
  }
}
