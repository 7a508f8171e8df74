import type { ModelSpec } from './model-spec.js'

/** An axis-aligned box: top-left corner and size, in the pixels of some image. */
export interface Box {
  x: number
  y: number
  width: number
  height: number
}

/**
 * Where the uploaded image sits inside the model input after `resizeForModel`: with `resize: 'contain'` sharp
 * scales it to fit (content size rounded to whole pixels) and centres it (padding rounded down on the left and
 * top); with `fill` it is stretched. Measured against sharp in test/letterbox.test.ts.
 */
export interface Letterbox {
  scaleX: number
  scaleY: number
  offsetX: number
  offsetY: number
}

export function letterboxOf (original: { width: number, height: number }, input: ModelSpec['input']): Letterbox {
  if (input.resize === 'fill') {
    return { scaleX: input.width / original.width, scaleY: input.height / original.height, offsetX: 0, offsetY: 0 }
  }
  const scale = Math.min(input.width / original.width, input.height / original.height)
  const contentWidth = Math.max(1, Math.round(original.width * scale))
  const contentHeight = Math.max(1, Math.round(original.height * scale))
  return {
    scaleX: contentWidth / original.width,
    scaleY: contentHeight / original.height,
    offsetX: Math.floor((input.width - contentWidth) / 2),
    offsetY: Math.floor((input.height - contentHeight) / 2)
  }
}

/** A box in the uploaded image's pixels -> the same box in model-input pixels. */
export function toModelBox (box: Box, letterbox: Letterbox): Box {
  return {
    x: letterbox.offsetX + box.x * letterbox.scaleX,
    y: letterbox.offsetY + box.y * letterbox.scaleY,
    width: box.width * letterbox.scaleX,
    height: box.height * letterbox.scaleY
  }
}

/** A box in model-input pixels -> the uploaded image's pixels, clipped to the image (padding maps to nothing). */
export function toOriginalBox (box: Box, letterbox: Letterbox, original: { width: number, height: number }): Box {
  const x0 = Math.min(original.width, Math.max(0, (box.x - letterbox.offsetX) / letterbox.scaleX))
  const y0 = Math.min(original.height, Math.max(0, (box.y - letterbox.offsetY) / letterbox.scaleY))
  const x1 = Math.min(original.width, Math.max(0, (box.x + box.width - letterbox.offsetX) / letterbox.scaleX))
  const y1 = Math.min(original.height, Math.max(0, (box.y + box.height - letterbox.offsetY) / letterbox.scaleY))
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }
}
