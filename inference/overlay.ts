import sharp, { type OverlayOptions } from 'sharp'
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
 * Side of the grid the heatmap is computed on, at most: libvips scales it to the image. The map has 14x14 cells, so
 * 512 samples per axis are still several per cell; the event loop's share no longer grows with the upload's size.
 */
const HEAT_GRID = 512

/**
 * The slice with where the model looked: the Stone-minus-Normal activation map as a viridis heatmap (relative to
 * this image's own map: transparent at its median, brightest and most opaque at its peak), then the findings' boxes
 * (white inside black, so that they show on bone and on air; the top finding solid, the others dashed). The map is
 * sampled bilinearly through the same letterbox the findings were mapped back through, so the heatmap and the boxes
 * line up. Returns a PNG of the uploaded size. Only the heatmap's grid and the boxes' rims are computed here; libvips
 * scales and blends them onto the slice in its own threads (a 6000x6000 upload took 1.4 s on the event loop when
 * every pixel was blended here).
 */
export async function renderOverlay ({ image, cam, findings, spec, heatmap }: OverlayInput): Promise<Buffer> {
  const { width, height } = image
  const layers: OverlayOptions[] = []
  if (heatmap && cam !== undefined && cam.dims[0] === 2) {
    const map = evidenceMap(cam.values, [1, ...cam.dims], 0, spec.classes.indexOf(spec.positiveClass))
    const heat = await heatLayer({ width, height }, map, letterboxOf({ width, height }, spec.input), spec.input)
    if (heat !== undefined) layers.push({ input: heat, raw: { width, height, channels: 4 } })
  }
  const thickness = Math.max(1, Math.round(Math.min(width, height) / 256))
  findings.forEach((finding, rank) => layers.push(boxLayer({ width, height }, finding.box, thickness, rank > 0)))
  return await sharp(image.pixels, { raw: { width, height, channels: image.channels } })
    .composite(layers).removeAlpha().toColourspace('srgb').png().toBuffer()
}

/** The heatmap as RGBA at the image's size (alpha: its opacity), or undefined when the map is flat. */
async function heatLayer (size: { width: number, height: number }, map: EvidenceMap, letterbox: Letterbox, input: { width: number, height: number }): Promise<Buffer | undefined> {
  const sorted = Float32Array.from(map.values).sort()
  const median = sorted[Math.floor((sorted.length - 1) / 2)]
  const peak = sorted[sorted.length - 1]
  if (!(peak > median)) return undefined
  const grid = { width: Math.min(size.width, HEAT_GRID), height: Math.min(size.height, HEAT_GRID) }
  // where each grid column / row falls on the map, in cell units (cell centres at .5, half-pixel convention); a grid
  // sample stands for `pixels / samples` image pixels
  const axis = (samples: number, pixels: number, offset: number, scale: number, modelSize: number, cells: number): Float32Array =>
    Float32Array.from({ length: samples }, (_, p) => Math.min(cells - 1, Math.max(0, (offset + (p + 0.5) * (pixels / samples) * scale) * cells / modelSize - 0.5)))
  const columns = axis(grid.width, size.width, letterbox.offsetX, letterbox.scaleX, input.width, map.width)
  const rows = axis(grid.height, size.height, letterbox.offsetY, letterbox.scaleY, input.height, map.height)
  const at = (x: number, y: number): number => map.values[y * map.width + x]
  const rgba = Buffer.alloc(grid.width * grid.height * 4)
  for (let y = 0; y < grid.height; y++) {
    const y0 = Math.floor(rows[y])
    const y1 = Math.min(map.height - 1, y0 + 1)
    const wy = rows[y] - y0
    for (let x = 0; x < grid.width; x++) {
      const x0 = Math.floor(columns[x])
      const x1 = Math.min(map.width - 1, x0 + 1)
      const wx = columns[x] - x0
      const value = (at(x0, y0) * (1 - wx) + at(x1, y0) * wx) * (1 - wy) + (at(x0, y1) * (1 - wx) + at(x1, y1) * wx) * wy
      const strength = (value - median) / (peak - median)
      if (strength <= 0) continue
      const colour = VIRIDIS[Math.round(Math.min(1, strength) * 255)]
      const j = (y * grid.width + x) * 4
      rgba.set(colour, j)
      rgba[j + 3] = Math.round(255 * HEATMAP_MAX_OPACITY * Math.min(1, strength))
    }
  }
  if (grid.width === size.width && grid.height === size.height) return rgba
  return await sharp(rgba, { raw: { ...grid, channels: 4 } }).resize(size.width, size.height, { fit: 'fill', kernel: 'linear' }).raw().toBuffer()
}

/**
 * A box's rim as an RGBA layer over the part of the image it covers: `thickness` px of black, then `thickness` px of
 * white inside it; dashed: every other stretch of 4 x thickness. Clipped to the image (libvips composites nothing
 * larger than the base).
 */
function boxLayer (size: { width: number, height: number }, box: Finding['box'], thickness: number, dashed: boolean): OverlayOptions {
  const dash = 4 * thickness
  const left = Math.max(0, box.x - thickness)
  const top = Math.max(0, box.y - thickness)
  const width = Math.max(1, Math.min(size.width, box.x + box.width + thickness) - left)
  const height = Math.max(1, Math.min(size.height, box.y + box.height + thickness) - top)
  const rgba = Buffer.alloc(width * height * 4)
  const set = (x: number, y: number, value: number): void => {
    const [lx, ly] = [x - left, y - top]
    if (lx < 0 || ly < 0 || lx >= width || ly >= height) return
    const j = (ly * width + lx) * 4
    rgba[j] = rgba[j + 1] = rgba[j + 2] = value
    rgba[j + 3] = 255
  }
  const right = box.x + box.width - 1
  const bottom = box.y + box.height - 1
  // rings at distance `thickness` .. 1 outside the box are black, the box's own edge and the rings inside it white
  for (let ring = 0; ring < 2 * thickness; ring++) {
    const value = ring < thickness ? 0 : 255
    const outset = thickness - ring
    const [x0, y0, x1, y1] = [box.x - outset, box.y - outset, right + outset, bottom + outset]
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
  return { input: rgba, raw: { width, height, channels: 4 }, left, top }
}
