import type { PixelBox } from './yildirim.js'
import { seededRandom } from './random.js'

/**
 * Stone-removed counterfactuals and decoys for boxed CT slices (pure code, no I/O).
 *
 * `removeStones` in-paints every (slightly enlarged, merged) stone box by seamless cloning: a nearby stone-free
 * patch of the same size is copied in and a harmonic (Laplace) correction makes it meet the box border, so the
 * filled area keeps anatomy and CT grain and shows no flat, blurry spot that would give the removal away.
 * `placeDecoy` applies exactly the same in-painting to equal-sized regions inside the body away from the
 * stones: a model that reacts to the in-painting instead of the stone calls the decoy Normal.
 */

/** Same shape as `inference/decode.ts`'s decoded image: 8-bit interleaved pixels. */
export interface PixelImage {
  pixels: Buffer
  width: number
  height: number
  channels: number
}

export interface Counterfactual<T extends PixelImage = PixelImage> {
  /** A copy of the input (same type, e.g. `DecodedImage`) with the regions in-painted. */
  image: T
  /** The integer pixel boxes that were in-painted. */
  regions: PixelBox[]
}

export interface InpaintOptions {
  /** Seeds the choice of decoy places; same seed, same output. Default 1. */
  seed?: number
  /** Box growth factor around the centre (plus 2 px) so no stone rim stays behind. Default 1.4. */
  grow?: number
}

const AIR_LEVEL = 25

/** Grows a box around its centre by `grow` (+2 px each side), rounded outwards and clamped to the image. */
export function enlargeBox (box: PixelBox, width: number, height: number, grow = 1.4): PixelBox {
  const cx = box.x + box.width / 2
  const cy = box.y + box.height / 2
  const x0 = Math.max(0, Math.floor(cx - (box.width * grow) / 2 - 2))
  const y0 = Math.max(0, Math.floor(cy - (box.height * grow) / 2 - 2))
  const x1 = Math.min(width, Math.ceil(cx + (box.width * grow) / 2 + 2))
  const y1 = Math.min(height, Math.ceil(cy + (box.height * grow) / 2 + 2))
  return { x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0) }
}

export function removeStones<T extends PixelImage> (image: T, stones: PixelBox[], options: InpaintOptions = {}): Counterfactual<T> {
  const regions = mergeRegions(stones.map((b) => enlargeBox(b, image.width, image.height, options.grow)))
  return { image: inpaintRegions(image, regions), regions }
}

/**
 * In-paints, for every region `removeStones` would fill, an equal-sized region inside the body that keeps clear
 * of all stones. Among the mirror position across the vertical midline (the other kidney) and seeded random
 * places, it takes the one whose surroundings look most like the stone's (mean and spread of grey), so decoys
 * land on similar tissue rather than on bone or gas. Returns undefined when no such place exists.
 */
export function placeDecoy<T extends PixelImage> (image: T, stones: PixelBox[], options: InpaintOptions = {}): Counterfactual<T> | undefined {
  const rng = seededRandom(options.seed ?? 1)
  const stoneRegions = mergeRegions(stones.map((b) => enlargeBox(b, image.width, image.height, options.grow)))
  const regions: PixelBox[] = []
  for (const stone of stoneRegions) {
    const keepOut = [...stoneRegions.map((r) => pad(r, Math.max(r.width, r.height) / 2)), ...regions.map((r) => pad(r, 3))]
    const fits = (c: PixelBox): boolean =>
      c.x >= 2 && c.y >= 2 && c.x + c.width <= image.width - 2 && c.y + c.height <= image.height - 2 &&
      !keepOut.some((k) => intersects(c, k)) && insideBody(image, c)
    const target = ringStats(image, stone)
    const candidates = [{ ...stone, x: image.width - stone.x - stone.width }]
    for (let k = 0; k < 200; k++) {
      candidates.push({
        ...stone,
        x: Math.floor(rng() * (image.width - stone.width)),
        y: Math.floor(rng() * (image.height - stone.height))
      })
    }
    let best: PixelBox | undefined
    let bestScore = Infinity
    for (const [k, c] of candidates.entries()) {
      if (!fits(c)) continue
      const s = ringStats(image, c)
      // the mirror place (k = 0) is the natural decoy, so it wins unless clearly worse
      const score = (Math.abs(s.mean - target.mean) + 0.5 * Math.abs(s.std - target.std)) * (k === 0 ? 0.5 : 1)
      if (score < bestScore) { bestScore = score; best = c }
    }
    if (best === undefined) return undefined
    regions.push(best)
  }
  return { image: inpaintRegions(image, regions, stoneRegions), regions }
}

/** Merges boxes that overlap or nearly touch, so the regions to fill are disjoint with clean borders. */
export function mergeRegions (boxes: PixelBox[]): PixelBox[] {
  const out = boxes.map((b) => ({ ...b }))
  for (let merged = true; merged;) {
    merged = false
    for (let i = 0; i < out.length && !merged; i++) {
      for (let j = i + 1; j < out.length && !merged; j++) {
        if (!intersects(pad(out[i], 2), out[j])) continue
        const x = Math.min(out[i].x, out[j].x)
        const y = Math.min(out[i].y, out[j].y)
        out[i] = {
          x,
          y,
          width: Math.max(out[i].x + out[i].width, out[j].x + out[j].width) - x,
          height: Math.max(out[i].y + out[i].height, out[j].y + out[j].height) - y
        }
        out.splice(j, 1)
        merged = true
      }
    }
  }
  return out
}

/**
 * Seamless cloning for each (disjoint) region: the content of a nearby clean patch of the same size is copied
 * in, and a harmonic correction makes it meet the region's border exactly, so anatomy and CT grain continue
 * through the region. Without any clean patch nearby, the region gets the plain harmonic fill. Patches are
 * never copied from `avoid` (the stones, when placing decoys).
 */
export function inpaintRegions<T extends PixelImage> (image: T, regions: PixelBox[], avoid: PixelBox[] = []): T {
  const { width, height, channels } = image
  const blocked = [...regions, ...avoid].map((r) => pad(r, 1))
  const out = Buffer.from(image.pixels)
  for (const r of regions) {
    const src = cloneSource(image, r, blocked)
    const frame = clampBox(pad(r, 1), width, height)
    for (let c = 0; c < channels; c++) {
      const at = (x: number, y: number): number => image.pixels[(y * width + x) * channels + c]
      const guide = (x: number, y: number): number => src === undefined ? 0 : at(x + src.dx, y + src.dy)
      // difference between target and guide, fixed on the frame's border, solved inside the region
      const diff = new Float64Array(frame.width * frame.height)
      for (let y = 0; y < frame.height; y++) {
        for (let x = 0; x < frame.width; x++) diff[y * frame.width + x] = at(frame.x + x, frame.y + y) - guide(frame.x + x, frame.y + y)
      }
      harmonicFill(diff, frame, r)
      for (let y = r.y; y < r.y + r.height; y++) {
        for (let x = r.x; x < r.x + r.width; x++) {
          const v = Math.round(guide(x, y) + diff[(y - frame.y) * frame.width + (x - frame.x)])
          out[(y * width + x) * channels + c] = Math.min(255, Math.max(0, v))
        }
      }
    }
  }
  return { ...image, pixels: out }
}

/** Laplace's equation inside `region` (SOR); the rest of `frame` is the fixed boundary; edges are Neumann. */
function harmonicFill (f: Float64Array, frame: PixelBox, region: PixelBox): void {
  const fw = frame.width
  const inside: number[] = []
  let borderSum = 0
  let borderCount = 0
  for (let y = 0; y < frame.height; y++) {
    for (let x = 0; x < fw; x++) {
      const gx = frame.x + x
      const gy = frame.y + y
      const isInside = gx >= region.x && gx < region.x + region.width && gy >= region.y && gy < region.y + region.height
      if (isInside) inside.push(y * fw + x)
      else { borderSum += f[y * fw + x]; borderCount++ }
    }
  }
  const start = borderCount > 0 ? borderSum / borderCount : 0
  for (const i of inside) f[i] = start
  const omega = 1.9
  for (let iter = 0; iter < 3000; iter++) {
    let maxDelta = 0
    for (const i of inside) {
      const x = i % fw
      let sum = 0
      let n = 0
      if (x > 0) { sum += f[i - 1]; n++ }
      if (x < fw - 1) { sum += f[i + 1]; n++ }
      if (i >= fw) { sum += f[i - fw]; n++ }
      if (i < fw * (frame.height - 1)) { sum += f[i + fw]; n++ }
      const delta = omega * (sum / n - f[i])
      f[i] += delta
      maxDelta = Math.max(maxDelta, Math.abs(delta))
    }
    if (maxDelta < 0.005) break
  }
}

/**
 * The shift to a same-sized patch next to the region (8 directions, 3 distances) that is clear of every region,
 * inside the body, and whose own border matches the region's border best (least correction needed).
 */
function cloneSource (image: PixelImage, r: PixelBox, blocked: PixelBox[]): { dx: number, dy: number } | undefined {
  const { width, height, channels } = image
  const frame = pad(r, 1)
  if (frame.x < 0 || frame.y < 0 || frame.x + frame.width > width || frame.y + frame.height > height) return undefined
  let best: { dx: number, dy: number } | undefined
  let bestScore = Infinity
  for (const [ux, uy] of [[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, 1], [1, -1], [-1, -1]]) {
    for (const gap of [2, 5, 10]) {
      const dx = ux * (r.width + gap)
      const dy = uy * (r.height + gap)
      const src = { x: frame.x + dx, y: frame.y + dy, width: frame.width, height: frame.height }
      if (src.x < 0 || src.y < 0 || src.x + src.width > width || src.y + src.height > height) continue
      if (blocked.some((b) => intersects(src, b)) || !insideBody(image, src)) continue
      let mismatch = 0
      let n = 0
      let borderMax = 0
      let sourceMax = 0
      for (let y = frame.y; y < frame.y + frame.height; y++) {
        for (let x = frame.x; x < frame.x + frame.width; x++) {
          const source = image.pixels[((y + dy) * width + x + dx) * channels]
          sourceMax = Math.max(sourceMax, source)
          if (y > frame.y && y < frame.y + frame.height - 1 && x > frame.x && x < frame.x + frame.width - 1) continue
          const target = image.pixels[(y * width + x) * channels]
          borderMax = Math.max(borderMax, target)
          mismatch += Math.abs(target - source)
          n++
        }
      }
      // a patch brighter than anything around the region would paste a stone-like spot back in
      if (sourceMax > borderMax + 10) continue
      const score = mismatch / n
      if (score < bestScore) { bestScore = score; best = { dx, dy } }
    }
  }
  return best
}

/** Grey mean and spread of a 6 px ring around the box (the box itself excluded, it may hold a stone). */
function ringStats (image: PixelImage, box: PixelBox): { mean: number, std: number } {
  const b = clampBox(pad(box, 6), image.width, image.height)
  let sum = 0
  let sumSq = 0
  let n = 0
  for (let y = b.y; y < b.y + b.height; y++) {
    for (let x = b.x; x < b.x + b.width; x++) {
      if (x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height) continue
      const v = image.pixels[(y * image.width + x) * image.channels]
      sum += v
      sumSq += v * v
      n++
    }
  }
  n = Math.max(1, n)
  return { mean: sum / n, std: Math.sqrt(Math.max(0, sumSq / n - (sum / n) ** 2)) }
}

/** Body, not air: almost no near-black pixels and a tissue-like mean in the first channel. */
function insideBody (image: PixelImage, box: PixelBox): boolean {
  let dark = 0
  let sum = 0
  const n = box.width * box.height
  for (let y = box.y; y < box.y + box.height; y++) {
    for (let x = box.x; x < box.x + box.width; x++) {
      const v = image.pixels[(y * image.width + x) * image.channels]
      if (v < AIR_LEVEL) dark++
      sum += v
    }
  }
  return dark <= 0.02 * n && sum / n >= 2 * AIR_LEVEL
}

function clampBox (b: PixelBox, width: number, height: number): PixelBox {
  const x = Math.max(0, b.x)
  const y = Math.max(0, b.y)
  return { x, y, width: Math.min(width, b.x + b.width) - x, height: Math.min(height, b.y + b.height) - y }
}

function pad (b: PixelBox, p: number): PixelBox {
  const q = Math.ceil(p)
  return { x: b.x - q, y: b.y - q, width: b.width + 2 * q, height: b.height + 2 * q }
}

function intersects (a: PixelBox, b: PixelBox): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
}
