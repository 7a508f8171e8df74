/**
 * What every decoder produces and is told, shared by the JPEG/PNG path (inference/decode.ts) and the DICOM path
 * (inference/dicom/): a leaf module, so that neither imports the other.
 */

/** 8-bit pixels, interleaved, row-major: what every input format is turned into before the resize to model size. */
export interface DecodedImage {
  pixels: Buffer
  width: number
  height: number
  channels: 1 | 3
}

/** What a decoder must produce, and the most it may: told before any pixel is decoded. */
export interface DecodeTarget {
  /** 1: greyscale (CT is greyscale; colour screenshots are reduced to luminance), 3: sRGB. */
  channels: 1 | 3
  /** Largest width x height accepted; checked from the header (and a codestream's own frame header) first. */
  maxPixels: number
}
