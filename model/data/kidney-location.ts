import { connectedRegions, type ConnectedRegion } from '../../inference/connected-regions.js'
import type { PixelBox } from './yildirim.js'

/**
 * Where the kidneys are on an axial abdominal CT slice, estimated from the spine (pure code, no I/O).
 *
 * The body is the largest connected region brighter than air; the vertebra is the largest bright (bone-level)
 * region near the body's vertical midline in its lower part; the kidneys lie on both sides of the vertebral
 * body, at its height. Used to place stone patches into kidneys (stone-added counterfactuals) and to measure
 * kidney enhancement (the protocol cross-check). Checked by eye on montages of every training series.
 */

/** A grey image, one channel, row-major (the model input). */
export interface GreyImage {
  pixels: Uint8Array
  width: number
  height: number
}

export interface KidneyLocation {
  body: PixelBox
  /** Bounding box of the bone region taken for the vertebra (vertebral body plus posterior elements). */
  vertebra: PixelBox
  /** Width of the vertebral body: the unit for distances from the spine. */
  vertebralWidth: number
  /** Centre of the vertebral body. */
  spineCentre: { x: number, y: number }
  /** Grey level from which a pixel counts as bone on this slice. */
  boneLevel: number
  /** Estimated centres of the renal sinus (medial kidney), left and right in image coordinates. */
  kidneys: Array<{ x: number, y: number }>
}

const AIR_LEVEL = 8
/** Bone is at least this grey, and at least the body's 98th percentile (windows differ between exports). */
const BONE_FLOOR = 170

export function locateKidneys (image: GreyImage): KidneyLocation | undefined {
  const { pixels, width, height } = image
  const bodyRegion = largest(connectedRegions(width, height, (i) => pixels[i] > AIR_LEVEL))
  if (bodyRegion === undefined || bodyRegion.cells.length < 0.1 * width * height) return undefined
  const body = boxOf(bodyRegion)
  const grey = Uint8Array.from(bodyRegion.cells, (i) => pixels[i]).sort()
  const boneLevel = Math.max(BONE_FLOOR, grey[Math.floor(0.98 * (grey.length - 1))])
  const inBody = new Uint8Array(width * height)
  for (const i of bodyRegion.cells) inBody[i] = 1
  const midline = body.x + body.width / 2
  const candidates = connectedRegions(width, height, (i) => inBody[i] === 1 && pixels[i] >= boneLevel).filter((r) => {
    const cx = r.x + r.width / 2
    const cy = r.y + r.height / 2
    return Math.abs(cx - midline) < 0.15 * body.width && cy > body.y + 0.45 * body.height && r.width < 0.35 * body.width
  })
  const vertebraRegion = largest(candidates)
  if (vertebraRegion === undefined || vertebraRegion.cells.length < 12) return undefined
  const vertebra = boxOf(vertebraRegion)
  const vertebralWidth = upperWidth(vertebraRegion, width)
  const spineCentre = { x: vertebra.x + vertebra.width / 2, y: vertebra.y + vertebralWidth / 2 }
  const offset = 0.2 * body.width
  return {
    body,
    vertebra,
    vertebralWidth,
    spineCentre,
    boneLevel,
    kidneys: [{ x: spineCentre.x - offset, y: spineCentre.y }, { x: spineCentre.x + offset, y: spineCentre.y }]
  }
}

function largest (regions: ConnectedRegion[]): ConnectedRegion | undefined {
  return regions.reduce<ConnectedRegion | undefined>((best, r) => (best === undefined || r.cells.length > best.cells.length ? r : best), undefined)
}

function boxOf (r: ConnectedRegion): PixelBox {
  return { x: r.x, y: r.y, width: r.width, height: r.height }
}

/** Widest row of the region's upper half: the vertebral body, without the wider transverse processes below. */
function upperWidth (r: ConnectedRegion, width: number): number {
  const rows = new Map<number, { min: number, max: number }>()
  for (const cell of r.cells) {
    const y = Math.floor(cell / width)
    if (y > r.y + r.height / 2) continue
    const x = cell % width
    const row = rows.get(y) ?? { min: x, max: x }
    rows.set(y, { min: Math.min(row.min, x), max: Math.max(row.max, x) })
  }
  return Math.max(1, ...[...rows.values()].map((row) => row.max - row.min + 1))
}

/**
 * Kidney enhancement index: the 75th percentile of grey in both kidney windows (the band where `stone-added`
 * places stones) minus the median grey of the back muscles beside the spinous process. Contrast-enhanced renal
 * parenchyma is much brighter than muscle, unenhanced parenchyma about as bright: a measurable cross-check of
 * the protocol labels read by eye (model/training/protocol.ts), not a classifier.
 */
export function kidneyEnhancement (image: GreyImage, location: KidneyLocation): number {
  const { vertebralWidth: unit, spineCentre: centre, vertebra } = location
  const kidney: number[] = []
  const muscle: number[] = []
  const collect = (into: number[], fromX: number, toX: number, fromY: number, toY: number): void => {
    for (let y = Math.max(0, Math.round(fromY)); y <= Math.min(image.height - 1, toY); y++) {
      for (let x = Math.max(0, Math.round(fromX)); x <= Math.min(image.width - 1, toX); x++) into.push(image.pixels[y * image.width + x])
    }
  }
  for (const side of [-1, 1]) {
    const at = (distance: number): number => centre.x + side * distance * unit
    collect(kidney, Math.min(at(1.5), at(2.5)), Math.max(at(1.5), at(2.5)), centre.y - 0.6 * unit, centre.y + 0.1 * unit)
    const bottom = vertebra.y + vertebra.height
    collect(muscle, Math.min(at(0.7), at(1.2)), Math.max(at(0.7), at(1.2)), bottom - 0.2 * unit, bottom + 0.3 * unit)
  }
  return quantile(kidney, 0.75) - quantile(muscle, 0.5)
}

function quantile (values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? NaN : sorted[Math.floor(fraction * (sorted.length - 1))]
}
