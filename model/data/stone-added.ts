import { letterboxOf, toModelBox, type Box } from '../../inference/letterbox.js'
import type { ModelSpec } from '../../inference/model-spec.js'
import { locateKidneys, type GreyImage, type KidneyLocation } from './kidney-location.js'

/**
 * "Stone-added" counterfactuals (pure code, no I/O): a real stone from a boxed yildirim slice, blended into a
 * kidney of a stone-free axial slice, and its decoy twin, the same blending of a stone-free patch of the same
 * yildirim slice at the same place with the same strength. Both work on model inputs (224x224 grey).
 *
 * A patch is what a region adds to its slice: max(0, slice - the same slice with the region in-painted)
 * (model/data/counterfactual.ts), so a stone patch is the stone's bright bump without the surrounding anatomy
 * and a decoy patch is whatever the in-painting took away from a stone-free place. Added onto the target, the
 * stone patch gives a bright dot in the kidney (label Stone); the decoy gives the same operation without a
 * stone (label Normal), so that neither the blending nor the foreign grain can be the cue.
 */

/** Non-negative grey increments, row-major. */
export interface Patch {
  values: Float32Array
  width: number
  height: number
}

/** One yildirim region: its stone patch and, from the same slice, a decoy patch of the same size. */
export interface PatchPair {
  stone: Patch
  decoy: Patch
}

/** The model inputs of one boxed slice and its two in-paintings, with the in-painted regions in original pixels. */
export interface BoxedSlice {
  original: Uint8Array
  stoneRemoved: Uint8Array
  decoy: Uint8Array
  originalSize: { width: number, height: number }
  removedRegions: Box[]
  decoyRegions: Box[]
}

/** Stones fainter than this (grey levels at model resolution) are not used: the bump would be lost in noise. */
const MIN_STONE_BUMP = 25
/** A decoy patch may rise at most this share of its stone's bump. */
const MAX_DECOY_SHARE = 0.35

/** The stone / decoy patch pairs of one boxed slice (region i of the stones pairs with decoy region i). */
export function patchPairs (slice: BoxedSlice, input: ModelSpec['input']): PatchPair[] {
  const letterbox = letterboxOf(slice.originalSize, input)
  const size = { width: input.width, height: input.height }
  const pairs: PatchPair[] = []
  slice.removedRegions.forEach((region, i) => {
    const decoyRegion = slice.decoyRegions[i]
    if (decoyRegion === undefined) return
    const stoneBox = pixelBox(toModelBox(region, letterbox), size)
    const decoyBox = pixelBox(toModelBox(decoyRegion, letterbox), size)
    // both boxes come from equal-sized regions; rounding may differ by a pixel, the smaller size is used
    const width = Math.min(stoneBox.width, decoyBox.width)
    const height = Math.min(stoneBox.height, decoyBox.height)
    const stone = patchBetween(slice.original, slice.stoneRemoved, { ...stoneBox, width, height }, input.width)
    const decoy = patchBetween(slice.original, slice.decoy, { ...decoyBox, width, height }, input.width)
    const stoneBump = Math.max(...stone.values)
    // a decoy place that held something bright (bone, a vessel) would add a stone-like spot labelled Normal
    if (stoneBump < MIN_STONE_BUMP || Math.max(...decoy.values) > MAX_DECOY_SHARE * stoneBump) return
    pairs.push({ stone, decoy })
  })
  return pairs
}

function patchBetween (withRegion: Uint8Array, inpainted: Uint8Array, box: Box, rowWidth: number): Patch {
  const values = new Float32Array(box.width * box.height)
  for (let y = 0; y < box.height; y++) {
    for (let x = 0; x < box.width; x++) {
      const i = (box.y + y) * rowWidth + box.x + x
      values[y * box.width + x] = Math.max(0, withRegion[i] - inpainted[i])
    }
  }
  return { values, width: box.width, height: box.height }
}

/** Rounded outwards to whole pixels, one pixel of margin (the resize spreads a region's edge), clipped. */
function pixelBox (box: Box, size: { width: number, height: number }): Box {
  const x0 = Math.max(0, Math.floor(box.x) - 1)
  const y0 = Math.max(0, Math.floor(box.y) - 1)
  const x1 = Math.min(size.width, Math.ceil(box.x + box.width) + 1)
  const y1 = Math.min(size.height, Math.ceil(box.y + box.height) + 1)
  return { x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0) }
}

export interface StoneAddedTwins {
  /** The target with the stone patch added: label Stone. */
  stoneAdded: Uint8Array
  /** The target with the decoy patch added at the same place with the same gain: label Normal. */
  decoy: Uint8Array
  /** Where the patch went, in model-input pixels. */
  box: Box
}

/**
 * Blends a patch pair into a kidney of `target` (a stone-free axial model input), as `blend` says. The site is
 * drawn near one of the kidney centres `locateKidneys` estimates, on tissue at least as bright as the body's
 * median grey (kidney parenchyma, not fat or gas) and with no bone-bright pixel around it. Returns undefined when
 * no kidney or no site is found.
 */
export function addStoneTwins (target: GreyImage, pair: PatchPair, random: () => number): StoneAddedTwins | undefined {
  const location = locateKidneys(target)
  if (location === undefined) return undefined
  const site = chooseSite(target, location, random)
  if (site === undefined) return undefined
  const scale = drawScale(random)
  const { box, images: [stoneAdded, decoy] } = blend(target, site, [resample(pair.stone, scale), resample(pair.decoy, scale)], random)
  return { stoneAdded, decoy, box }
}

/**
 * Seed base of the vascular mimics' per-slice random streams (slice k: MIMIC_SEED + k), apart from the twins'
 * (k + 1): the training export and the evaluation draw their mimics from it.
 */
export const MIMIC_SEED = 1_000_003

/**
 * A vascular-calcification mimic (label Normal; made for the evaluation, not trained on): a stone patch of the same
 * kind and strength as `addStoneTwins` blends, placed wholly in front of the vertebral body, where the aorta and the
 * vena cava run. Calcified vessel walls are the classic stone mimic on non-contrast CT: a stone counts only where
 * urine runs, and the ureters run lateral to the vertebral body, over the psoas, so the band within half a
 * vertebral-body width of the midline holds no urinary stone (except in the isthmus of a horseshoe kidney, which
 * lies there). Returns undefined when no spine or no site is found.
 */
export function addVascularMimic (target: GreyImage, stone: Patch, random: () => number): { image: Uint8Array, box: Box } | undefined {
  const location = locateKidneys(target)
  if (location === undefined) return undefined
  const patch = resample(stone, drawScale(random))
  const site = chooseVesselSite(target, location, patch, random)
  if (site === undefined) return undefined
  const { box, images: [image] } = blend(target, site, [patch], random)
  return { image, box }
}

/** A patch's rescale, 0.55-1.0: yildirim crops are magnified about 1.3x against a full axial field of view. */
function drawScale (random: () => number): number {
  return 0.55 + 0.45 * random()
}

/**
 * Adds each (rescaled) patch centred at `site`, with one gain that raises the first patch's peak to 85-100 % of the
 * way from the site's grey to white (stones are far denser than enhanced parenchyma and saturate a soft-tissue
 * window).
 */
function blend (target: GreyImage, site: { x: number, y: number }, patches: Patch[], random: () => number): { box: Box, images: Uint8Array[] } {
  const box = boxAround(site, patches[0])
  const local = meanAround(target, site.x, site.y, 2)
  const peak = local + (255 - local) * (0.85 + 0.15 * random())
  const gain = (peak - local) / Math.max(MIN_STONE_BUMP, ...patches[0].values)
  return { box, images: patches.map((patch) => addPatch(target, patch, box, gain)) }
}

function boxAround (site: { x: number, y: number }, patch: Patch): Box {
  return { x: Math.round(site.x - patch.width / 2), y: Math.round(site.y - patch.height / 2), width: patch.width, height: patch.height }
}

const SITE_ATTEMPTS = 40

/**
 * The renal sinus and the inner parenchyma lie 1.5-2.5 vertebral-body widths to either side of the spine's centre,
 * from the vertebral body's front edge to its centre (checked on montages): medial to that is the psoas, behind it
 * the back muscles.
 */
function chooseSite (image: GreyImage, location: KidneyLocation, random: () => number): { x: number, y: number } | undefined {
  const { body, vertebralWidth: unit, spineCentre } = location
  const bodyGrey = medianGrey(image, body)
  for (let attempt = 0; attempt < SITE_ATTEMPTS; attempt++) {
    const side = random() < 0.5 ? -1 : 1
    const x = Math.round(spineCentre.x + side * (1.5 + random()) * unit)
    const y = Math.round(spineCentre.y + (-0.6 + 0.7 * random()) * unit)
    if (x < 4 || y < 4 || x >= image.width - 4 || y >= image.height - 4) continue
    if (meanAround(image, x, y, 2) >= bodyGrey && maxAround(image, x, y, 3) < location.boneLevel) return { x, y }
  }
  return undefined
}

/**
 * The whole patch in front of the vertebral body, from 0.1 to 1.0 of its width ahead of the bone region's front
 * edge, and within half its width of its centre line: the aorta and the vena cava. The centre on soft tissue: not air
 * or fat, and darker than halfway from the body's median grey to bone (the bone region found at bone level can miss
 * the front of a vertebral body, whose spongy bone is greyer than its cortex); no bone-bright pixel under the patch.
 */
function chooseVesselSite (image: GreyImage, location: KidneyLocation, patch: Patch, random: () => number): { x: number, y: number } | undefined {
  const { body, vertebra, vertebralWidth: unit, spineCentre } = location
  const bodyGrey = medianGrey(image, body)
  const softTissueCeiling = (bodyGrey + location.boneLevel) / 2
  const sideRoom = 0.5 * unit - patch.width / 2
  const depthRoom = 0.9 * unit - patch.height
  if (sideRoom < 0 || depthRoom < 0) return undefined
  for (let attempt = 0; attempt < SITE_ATTEMPTS; attempt++) {
    const x = Math.round(spineCentre.x + (2 * random() - 1) * sideRoom)
    const y = Math.round(vertebra.y - 0.1 * unit - patch.height / 2 - random() * depthRoom)
    const box = boxAround({ x, y }, patch)
    if (box.x < 0 || box.y < 0 || box.x + box.width > image.width || box.y + box.height > image.height) continue
    const grey = meanAround(image, x, y, 2)
    if (grey >= 0.8 * bodyGrey && grey < softTissueCeiling && maxIn(image, box) < location.boneLevel) return { x, y }
  }
  return undefined
}

function maxIn (image: GreyImage, box: Box): number {
  let max = 0
  for (let y = box.y; y < box.y + box.height; y++) {
    for (let x = box.x; x < box.x + box.width; x++) max = Math.max(max, image.pixels[y * image.width + x])
  }
  return max
}

function medianGrey (image: GreyImage, box: Box): number {
  const values: number[] = []
  for (let y = box.y; y < box.y + box.height; y++) {
    for (let x = box.x; x < box.x + box.width; x++) {
      const v = image.pixels[y * image.width + x]
      if (v > 8) values.push(v)
    }
  }
  values.sort((a, b) => a - b)
  return values.length === 0 ? 0 : values[Math.floor(values.length / 2)]
}

function around (image: GreyImage, cx: number, cy: number, radius: number): number[] {
  const values: number[] = []
  for (let y = Math.max(0, cy - radius); y <= Math.min(image.height - 1, cy + radius); y++) {
    for (let x = Math.max(0, cx - radius); x <= Math.min(image.width - 1, cx + radius); x++) values.push(image.pixels[y * image.width + x])
  }
  return values
}

function meanAround (image: GreyImage, cx: number, cy: number, radius: number): number {
  const values = around(image, Math.round(cx), Math.round(cy), radius)
  return values.reduce((a, b) => a + b, 0) / values.length
}

function maxAround (image: GreyImage, cx: number, cy: number, radius: number): number {
  return Math.max(...around(image, cx, cy, radius))
}

/** Bilinear rescale of a patch by `scale` (output at least 1x1). */
export function resample (patch: Patch, scale: number): Patch {
  const width = Math.max(1, Math.round(patch.width * scale))
  const height = Math.max(1, Math.round(patch.height * scale))
  const values = new Float32Array(width * height)
  for (let y = 0; y < height; y++) {
    const sy = Math.min(patch.height - 1, Math.max(0, (y + 0.5) / scale - 0.5))
    const y0 = Math.floor(sy)
    const y1 = Math.min(patch.height - 1, y0 + 1)
    const fy = sy - y0
    for (let x = 0; x < width; x++) {
      const sx = Math.min(patch.width - 1, Math.max(0, (x + 0.5) / scale - 0.5))
      const x0 = Math.floor(sx)
      const x1 = Math.min(patch.width - 1, x0 + 1)
      const fx = sx - x0
      const at = (px: number, py: number): number => patch.values[py * patch.width + px]
      values[y * width + x] = (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x1, y0)) + fy * ((1 - fx) * at(x0, y1) + fx * at(x1, y1))
    }
  }
  return { values, width, height }
}

function addPatch (target: GreyImage, patch: Patch, box: Box, gain: number): Uint8Array {
  const out = Uint8Array.from(target.pixels)
  for (let y = 0; y < patch.height; y++) {
    const ty = box.y + y
    if (ty < 0 || ty >= target.height) continue
    for (let x = 0; x < patch.width; x++) {
      const tx = box.x + x
      if (tx < 0 || tx >= target.width) continue
      const i = ty * target.width + tx
      out[i] = Math.min(255, Math.round(out[i] + gain * patch.values[y * patch.width + x]))
    }
  }
  return out
}
