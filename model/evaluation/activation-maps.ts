import sharp, { type OverlayOptions } from 'sharp'
import { letterboxOf, toModelBox } from '../../inference/letterbox.js'
import type { PixelBox } from '../data/yildirim.js'
import type { ModelSpec } from '../../inference/model-spec.js'
import { escapeXml } from './charts.js'
import type { ActivationMap } from './model-runner.js'

/** Stone boxes, in-painted regions and findings in the pixels of the original image of the given size. */
export interface CaseBoxes {
  originalSize: { width: number, height: number }
  stones: PixelBox[]
  inpainted: PixelBox[]
  /** The service's findings (inference/findings.ts), best first. */
  findings?: PixelBox[]
}

/** One slice to show: the model input and its Stone activation map. */
export interface ActivationCase {
  caption: string[]
  modelInput: Buffer
  stoneMap: ActivationMap | undefined
  boxes?: CaseBoxes
}

export interface ActivationRow {
  title: string
  cases: ActivationCase[]
}

const CAPTION_HEIGHT = 46
const TITLE_HEIGHT = 28
const GAP = 8
const FONT = 'font-family="DejaVu Sans, sans-serif"'

/** Piecewise-linear "jet"-like map: blue (low) -> cyan -> yellow -> red (high). */
function heatColour (value: number): [number, number, number] {
  const stops: Array<[number, number, number, number]> = [
    [0, 0, 0, 160], [0.35, 0, 200, 255], [0.65, 255, 230, 0], [1, 220, 0, 0]
  ]
  for (let i = 1; i < stops.length; i++) {
    if (value <= stops[i][0]) {
      const [v0, r0, g0, b0] = stops[i - 1]
      const [v1, r1, g1, b1] = stops[i]
      const t = (value - v0) / (v1 - v0)
      return [r0 + t * (r1 - r0), g0 + t * (g1 - g0), b0 + t * (b1 - b0)]
    }
  }
  return [220, 0, 0]
}

/**
 * Overlays the Stone map on the greyscale input. Evidence below the decision level is clipped (as negative evidence
 * is in Grad-CAM) and the map is scaled from there to its own maximum, so it shows where the model looks, not how
 * sure it is (the caption says that). The decision level is the evidence at which P(Stone) equals the threshold,
 * T * logit(threshold), not 0: with a threshold below 0.5, a Stone call's evidence can be negative everywhere.
 */
async function overlay (item: ActivationCase, spec: ModelSpec): Promise<Buffer> {
  const { width, height, channels } = spec.input
  const grey = await sharp(item.modelInput, { raw: { width, height, channels } })
    .toColourspace('b-w').raw().toBuffer()
  const rgb = Buffer.alloc(width * height * 3)
  let heat: Buffer | undefined
  if (item.stoneMap !== undefined) {
    const map = item.stoneMap
    const level = spec.temperature * Math.log(spec.threshold / (1 - spec.threshold))
    const peak = Math.max(level, ...map.values)
    const scaled = Buffer.from(Array.from(map.values, (v) => peak > level ? Math.round(255 * Math.max(0, v - level) / (peak - level)) : 0))
    heat = await sharp(scaled, { raw: { width: map.width, height: map.height, channels: 1 } })
      .resize(width, height, { fit: 'fill', kernel: 'cubic' }).extractChannel(0).raw().toBuffer()
  }
  for (let i = 0; i < width * height; i++) {
    const value = heat === undefined ? 0 : heat[i] / 255
    const alpha = 0.55 * value
    const colour = heatColour(value)
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = Math.round(grey[i] * (1 - alpha) + colour[c] * alpha)
  }
  const boxes = item.boxes === undefined
    ? ''
    : [
        ...item.boxes.stones.map((box) => boxSvg(box, item.boxes as CaseBoxes, spec, '#39ff14', '')),
        ...item.boxes.inpainted.map((box) => boxSvg(box, item.boxes as CaseBoxes, spec, '#ff00ff', 'stroke-dasharray="3 2"')),
        ...(item.boxes.findings ?? []).map((box, rank) =>
          boxSvg(box, item.boxes as CaseBoxes, spec, '#00e5ff', rank === 0 ? 'stroke-width="2.5"' : 'stroke-dasharray="1 2"'))
      ].join('')
  const image = sharp(rgb, { raw: { width, height, channels: 3 } })
  if (boxes === '') return await image.png().toBuffer()
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${boxes}</svg>`
  return await image.composite([{ input: Buffer.from(svg) }]).png().toBuffer()
}

/** Draws a box given in original pixels on the model input, which `resize: contain` centres and pads. */
function boxSvg (box: PixelBox, boxes: CaseBoxes, spec: ModelSpec, colour: string, style: string): string {
  const shown = toModelBox(box, letterboxOf(boxes.originalSize, spec.input))
  const attributes = style.includes('stroke-width') ? style : `stroke-width="1.5" ${style}`
  return `<rect x="${shown.x.toFixed(1)}" y="${shown.y.toFixed(1)}" width="${shown.width.toFixed(1)}" height="${shown.height.toFixed(1)}" ` +
    `fill="none" stroke="${colour}" ${attributes}/>`
}

/** A grid with one titled row per kind of case; empty rows say that no such case occurred. */
export async function activationGrid (rows: ActivationRow[], spec: ModelSpec, file: string): Promise<void> {
  const tile = spec.input.width
  const columns = Math.max(1, ...rows.map((row) => row.cases.length))
  const fullRow = TITLE_HEIGHT + spec.input.height + CAPTION_HEIGHT + GAP
  const emptyRow = TITLE_HEIGHT + 30
  const width = columns * (tile + GAP) + GAP
  const height = GAP + rows.reduce((sum, row) => sum + (row.cases.length === 0 ? emptyRow : fullRow), 0)
  const layers: OverlayOptions[] = []
  let text = ''
  let top = GAP
  for (const row of rows) {
    text += `<text x="${GAP}" y="${top + 19}" font-size="15" font-weight="bold" ${FONT}>${escapeXml(row.title)}</text>`
    if (row.cases.length === 0) {
      text += `<text x="${GAP}" y="${top + TITLE_HEIGHT + 14}" font-size="13" fill="#555" ${FONT}>no such case in this data</text>`
    }
    for (const [c, item] of row.cases.entries()) {
      const left = GAP + c * (tile + GAP)
      layers.push({ input: await overlay(item, spec), left, top: top + TITLE_HEIGHT })
      item.caption.forEach((line, k) => {
        text += `<text x="${left}" y="${top + TITLE_HEIGHT + spec.input.height + 16 + 16 * k}" font-size="12" ${FONT}>${escapeXml(line)}</text>`
      })
    }
    top += row.cases.length === 0 ? emptyRow : fullRow
  }
  layers.push({ input: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${text}</svg>`), left: 0, top: 0 })
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(layers).png().toFile(file)
}
