import sharp from 'sharp'
import type { ActivationMaps } from './classifier.js'
import { VIRIDIS } from './colour-map.js'
import { evidenceMap, type EvidenceMap, type Finding } from './findings.js'
import type { DecodedImage } from './image.js'
import { letterboxOf, type Letterbox } from './letterbox.js'
import type { ModelSpec } from './model-spec.js'

/** Opacity of the heatmap where the evidence is at its peak; it fades to nothing at the map's median. */
const HEATMAP_MAX_OPACITY = 0.6

export interface OverlayInput {
  /** The upload decoded as the model saw it before the resize (inference/decode.ts), at its own size. */
  image: DecodedImage
  /** The activation maps recorded with the answer; without them there is no heatmap. */
  cam?: ActivationMaps
  findings: Finding[]
  spec: Pick<ModelSpec, 'input' | 'classes' | 'positiveClass'>
  heatmap: boolean
}

/**
 * The slice with where the model looked: the Stone-minus-Normal activation map as a viridis heatmap (relative to
 * this image's own map: transparent at its median, brightest and most opaque at its peak), then the findings' boxes
 * (white inside black, so that they show on bone and on air; the top finding solid, the others dashed). The map is
 * sampled bilinearly at each pixel's place in the model input, through the same letterbox the findings were mapped
 * back through, so the heatmap and the boxes line up. Returns a PNG of the uploaded size.
 */
export async function renderOverlay ({ image, cam, findings, spec, heatmap }: OverlayInput): Promise<Buffer> {
  const { width, height } = image
  const rgb = Buffer.alloc(width * height * 3)
  for (let i = 0, j = 0; i < width * height; i++, j += 3) {
    const grey = image.channels === 1 ? image.pixels[i] : undefined
    rgb[j] = grey ?? image.pixels[i * 3]
    rgb[j + 1] = grey ?? image.pixels[i * 3 + 1]
    rgb[j + 2] = grey ?? image.pixels[i * 3 + 2]
  }
  if (heatmap && cam !== undefined && cam.dims[0] === 2) {
    const map = evidenceMap(cam.values, [1, ...cam.dims], 0, spec.classes.indexOf(spec.positiveClass))
    paintHeatmap(rgb, { width, height }, map, letterboxOf({ width, height }, spec.input), spec.input)
  }
  const thickness = Math.max(1, Math.round(Math.min(width, height) / 256))
  findings.forEach((finding, rank) => drawBox(rgb, { width, height }, finding.box, thickness, rank > 0))
  return await sharp(rgb, { raw: { width, height, channels: 3 } }).png().toBuffer()
}

function paintHeatmap (rgb: Buffer, size: { width: number, height: number }, map: EvidenceMap, letterbox: Letterbox, input: { width: number, height: number }): void {
  const sorted = Float32Array.from(map.values).sort()
  const median = sorted[Math.floor((sorted.length - 1) / 2)]
  const peak = sorted[sorted.length - 1]
  if (!(peak > median)) return
  // where each column / row of the image falls on the map, in cell units (cell centres at .5, half-pixel convention)
  const axis = (pixels: number, offset: number, scale: number, modelSize: number, cells: number): Float32Array =>
    Float32Array.from({ length: pixels }, (_, p) => Math.min(cells - 1, Math.max(0, (offset + (p + 0.5) * scale) * cells / modelSize - 0.5)))
  const columns = axis(size.width, letterbox.offsetX, letterbox.scaleX, input.width, map.width)
  const rows = axis(size.height, letterbox.offsetY, letterbox.scaleY, input.height, map.height)
  const at = (x: number, y: number): number => map.values[y * map.width + x]
  for (let y = 0; y < size.height; y++) {
    const y0 = Math.floor(rows[y])
    const y1 = Math.min(map.height - 1, y0 + 1)
    const wy = rows[y] - y0
    for (let x = 0; x < size.width; x++) {
      const x0 = Math.floor(columns[x])
      const x1 = Math.min(map.width - 1, x0 + 1)
      const wx = columns[x] - x0
      const value = (at(x0, y0) * (1 - wx) + at(x1, y0) * wx) * (1 - wy) + (at(x0, y1) * (1 - wx) + at(x1, y1) * wx) * wy
      const strength = (value - median) / (peak - median)
      if (strength <= 0) continue
      const colour = VIRIDIS[Math.round(Math.min(1, strength) * 255)]
      const opacity = HEATMAP_MAX_OPACITY * Math.min(1, strength)
      const j = (y * size.width + x) * 3
      for (let c = 0; c < 3; c++) rgb[j + c] = Math.round(rgb[j + c] * (1 - opacity) + colour[c] * opacity)
    }
  }
}

/** A rectangle `thickness` px of black, then `thickness` px of white inside it; dashed: every other stretch of 4 x thickness. */
function drawBox (rgb: Buffer, size: { width: number, height: number }, box: Finding['box'], thickness: number, dashed: boolean): void {
  const dash = 4 * thickness
  const set = (x: number, y: number, value: number): void => {
    if (x < 0 || y < 0 || x >= size.width || y >= size.height) return
    const j = (y * size.width + x) * 3
    rgb[j] = rgb[j + 1] = rgb[j + 2] = value
  }
  const left = box.x
  const top = box.y
  const right = box.x + box.width - 1
  const bottom = box.y + box.height - 1
  // rings at distance `thickness` .. 1 outside the box are black, the box's own edge and the rings inside it white
  for (let ring = 0; ring < 2 * thickness; ring++) {
    const value = ring < thickness ? 0 : 255
    const outset = thickness - ring
    const [x0, y0, x1, y1] = [left - outset, top - outset, right + outset, bottom + outset]
    for (let x = x0; x <= x1; x++) {
      if (dashed && Math.floor((x - x0) / dash) % 2 === 1) continue
      set(x, y0, value)
      set(x, y1, value)
    }
    for (let y = y0; y <= y1; y++) {
      if (dashed && Math.floor((y - y0) / dash) % 2 === 1) continue
      set(x0, y, value)
      set(x1, y, value)
    }
  }
}
