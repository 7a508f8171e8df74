import { BlankImageError } from './errors.js'
import { letterboxOf, toModelBox } from './letterbox.js'
import type { ModelSpec } from './model-spec.js'

/**
 * Grey levels (of 255) an image's content may span and still be one flat level: JPEG noise on a uniform export
 * spans one or two; a CT slice in the soft-tissue window spans most of the range.
 */
const FLAT_RANGE = 4

/**
 * Whether the model-size pixels hold one flat grey level where the upload sits (the letterbox padding left out, and
 * the row and column at its edge, which the resize blends with the padding). A black, white or grey export, or a
 * DICOM slice of air alone in the soft-tissue window, was answered Normal with high confidence: the model has nothing
 * to say about it, and a failed export must not read as a clear scan.
 */
export function isBlank (pixels: Buffer, size: { width: number, height: number }, input: ModelSpec['input']): boolean {
  const content = toModelBox({ x: 0, y: 0, ...size }, letterboxOf(size, input))
  const inset = (extent: number): number => extent > 2 ? 1 : 0
  const [x0, x1] = [content.x + inset(content.width), content.x + content.width - inset(content.width)].map(Math.round)
  const [y0, y1] = [content.y + inset(content.height), content.y + content.height - inset(content.height)].map(Math.round)
  const { width, channels } = input
  let min = 255
  let max = 0
  for (let y = y0; y < y1; y++) {
    for (let i = (y * width + x0) * channels, end = (y * width + x1) * channels; i < end; i++) {
      const value = pixels[i]
      if (value < min) min = value
      if (value > max) max = value
    }
    if (max - min > FLAT_RANGE) return false
  }
  return true
}

/** Refuses an upload whose every image (each frame of a multi-frame object) is blank (`isBlank`). */
export function checkNotBlank (images: Buffer[], size: { width: number, height: number }, input: ModelSpec['input']): void {
  if (images.every((pixels) => isBlank(pixels, size, input))) throw new BlankImageError()
}
