import type { DicomWindow, PixelPadding } from './dataset.js'
import { storedValueOf, type StoredValueBits } from './pixel-data.js'

/**
 * The model input window when its sidecar names none (`input.window`): the abdominal soft-tissue window (centre
 * 40 HU, width 400 HU). The training slices are PACS exports in this window (fat dark grey, kidney parenchyma mid
 * grey; docs/hospital.md shows the measurement), and kidney stones (roughly 200 to 2,800 HU) saturate to white in it
 * exactly as they do in those exports, so DICOM input reaches the model with the grey levels it was trained on.
 */
export const ABDOMEN_WINDOW: DicomWindow = { center: 40, width: 400 }

/** Modality LUT (PS3.3 C.11.1): output value = stored value x RescaleSlope + RescaleIntercept (HU for CT). */
export function toModalityValues (stored: Int32Array, slope: number, intercept: number): Float64Array {
  const out = new Float64Array(stored.length)
  for (let i = 0; i < stored.length; i++) out[i] = stored[i] * slope + intercept
  return out
}

export type VoiFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID'

/** One value through the VOI LUT Function of PS3.3 C.11.2.1.2 to the 0..255 output range. */
export function windowValue (x: number, { center: c, width: w }: DicomWindow, fn: VoiFunction = 'LINEAR'): number {
  const yMax = 255
  if (fn === 'SIGMOID') return yMax / (1 + Math.exp(-4 * (x - c) / w))
  if (fn === 'LINEAR_EXACT') {
    if (x <= c - w / 2) return 0
    if (x > c + w / 2) return yMax
    return ((x - c) / w + 0.5) * yMax
  }
  // C.11.2.1.2.1: the 0.5 and (w - 1) terms map integer input values onto the output range exactly.
  if (w <= 1) return x <= c - 0.5 ? 0 : yMax
  if (x <= c - 0.5 - (w - 1) / 2) return 0
  if (x > c - 0.5 + (w - 1) / 2) return yMax
  return ((x - (c - 0.5)) / (w - 1) + 0.5) * yMax
}

/** Modality LUT and window as one: stored value x slope + intercept (`toModalityValues`), then `windowValue`. */
export interface WindowedRescale extends StoredValueBits {
  rescaleSlope: number
  rescaleIntercept: number
  window: DicomWindow
  fn: VoiFunction
  /** MONOCHROME1. */
  invert: boolean
  pixelPadding?: PixelPadding
}

/**
 * The 8-bit grey of every possible stored value (indexed by its masked code, 2^BitsStored entries), rounded, and
 * inverted after the VOI LUT for MONOCHROME1 (PS3.3 C.7.6.3.1.2), so the output is always "higher value = brighter".
 * The arithmetic of `toModalityValues` then `windowValue`, once per value instead of once per pixel: per-pixel
 * arrays of stored and modality values took 12 bytes per pixel (480 MB for a 40-megapixel slice);
 * pixel-data.ts `lookUpSamples` needs none.
 */
export function windowTable ({ rescaleSlope, rescaleIntercept, window, fn, invert, pixelPadding, ...bits }: WindowedRescale): Uint8Array {
  const table = new Uint8Array(1 << bits.bitsStored)
  const padding = paddingRange(pixelPadding, bits)
  for (let code = 0; code < table.length; code++) {
    const value = storedValueOf(code, bits)
    const grey = Math.round(windowValue(value * rescaleSlope + rescaleIntercept, window, fn))
    table[code] = padding !== undefined && value >= padding[0] && value <= padding[1] ? 0 : invert ? 255 - grey : grey
  }
  return table
}

/**
 * The stored values that mark pixels outside the scanned field (Pixel Padding Value, up to its Range Limit: PS3.3
 * C.7.5.1.1.2), not tissue: they are drawn black, as viewers draw them, whatever the rescale makes of them. A
 * scanner that writes -2000 into unsigned pixels (PixelRepresentation 0, 63536) otherwise had HU 62512 there: white
 * all around the scan circle, a quarter of CT1's pixels, which no training slice has. Compared as the image's own
 * stored values, so the element's VR (US or SS) does not matter.
 */
function paddingRange (padding: PixelPadding | undefined, bits: StoredValueBits): [number, number] | undefined {
  if (padding === undefined) return undefined
  const mask = (1 << bits.bitsStored) - 1
  const value = storedValueOf(padding.value & mask, bits)
  const limit = padding.rangeLimit === undefined ? value : storedValueOf(padding.rangeLimit & mask, bits)
  return [Math.min(value, limit), Math.max(value, limit)]
}

/**
 * The grey of every stored value of a display image (a secondary capture): the value itself, clamped to 0..255, and
 * inverted for MONOCHROME1, with no Modality LUT and no window: what a PNG of the same pixels gives.
 */
export function displayTable ({ invert, ...bits }: StoredValueBits & { invert: boolean }): Uint8Array {
  const table = new Uint8Array(1 << bits.bitsStored)
  for (let code = 0; code < table.length; code++) {
    const grey = Math.min(255, Math.max(0, storedValueOf(code, bits)))
    table[code] = invert ? 255 - grey : grey
  }
  return table
}
