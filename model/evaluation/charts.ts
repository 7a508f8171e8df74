import sharp from 'sharp'
import type { ReliabilityBin, RocPoint } from './metrics.js'

/** Charts are plain SVG strings rendered to PNG by sharp (librsvg): no chart library, no browser. */

const PANEL = 380
const MARGIN = { left: 60, right: 20, top: 44, bottom: 56 }
const PANEL_WIDTH = MARGIN.left + PANEL + MARGIN.right
const PANEL_HEIGHT = MARGIN.top + PANEL + MARGIN.bottom
const FONT = 'font-family="DejaVu Sans, sans-serif"'

export const COLOURS = { model: '#c0392b', probe: '#2471a3', diagonal: '#999999' }

export async function writeSvgAsPng (svg: string, file: string): Promise<void> {
  await sharp(Buffer.from(svg)).png().toFile(file)
}

export function escapeXml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function x (value: number): number {
  return MARGIN.left + value * PANEL
}

function y (value: number): number {
  return MARGIN.top + (1 - value) * PANEL
}

/** Frame, grid, ticks at 0.0..1.0, axis titles and the panel title of one panel. */
function axes (title: string, xTitle: string, yTitle: string): string {
  const ticks = [0, 0.2, 0.4, 0.6, 0.8, 1]
  const grid = ticks.map((t) =>
    `<line x1="${x(t)}" y1="${y(0)}" x2="${x(t)}" y2="${y(1)}" stroke="#e5e5e5"/>` +
    `<line x1="${x(0)}" y1="${y(t)}" x2="${x(1)}" y2="${y(t)}" stroke="#e5e5e5"/>` +
    `<text x="${x(t)}" y="${y(0) + 18}" font-size="12" text-anchor="middle" ${FONT}>${t.toFixed(1)}</text>` +
    `<text x="${x(0) - 8}" y="${y(t) + 4}" font-size="12" text-anchor="end" ${FONT}>${t.toFixed(1)}</text>`).join('')
  return grid +
    `<rect x="${x(0)}" y="${y(1)}" width="${PANEL}" height="${PANEL}" fill="none" stroke="#333"/>` +
    `<text x="${x(0.5)}" y="${y(0) + 42}" font-size="14" text-anchor="middle" ${FONT}>${escapeXml(xTitle)}</text>` +
    `<text transform="translate(16 ${y(0.5)}) rotate(-90)" font-size="14" text-anchor="middle" ${FONT}>${escapeXml(yTitle)}</text>` +
    `<text x="${x(0.5)}" y="26" font-size="15" font-weight="bold" text-anchor="middle" ${FONT}>${escapeXml(title)}</text>`
}

function panel (index: number, content: string): string {
  return `<g transform="translate(${index * PANEL_WIDTH} 0)">${content}</g>`
}

function svgDocument (panels: number, body: string): string {
  const width = panels * PANEL_WIDTH
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${PANEL_HEIGHT}" viewBox="0 0 ${width} ${PANEL_HEIGHT}">` +
    `<rect width="100%" height="100%" fill="white"/>${body}</svg>`
}

export interface RocSeries {
  name: string
  colour: string
  points: RocPoint[]
  /** The point the decision threshold picks, drawn as a dot. */
  operatingPoint?: { falsePositiveRate: number, truePositiveRate: number }
}

export interface RocPanel {
  title: string
  series: RocSeries[]
}

/** One ROC panel per dataset, side by side; the legend carries each curve's AUC in its name. */
export function rocChart (panels: RocPanel[]): string {
  const body = panels.map((rocPanel, index) => {
    const curves = rocPanel.series.map((series, k) => {
      const path = series.points.map((p) => `${x(p.falsePositiveRate).toFixed(1)},${y(p.truePositiveRate).toFixed(1)}`).join(' ')
      const dot = series.operatingPoint === undefined
        ? ''
        : `<circle cx="${x(series.operatingPoint.falsePositiveRate)}" cy="${y(series.operatingPoint.truePositiveRate)}" r="5" fill="${series.colour}" stroke="white"/>`
      const legendY = y(0) - 20 - 20 * (rocPanel.series.length - 1 - k)
      const legend = `<line x1="${x(0.38)}" y1="${legendY - 4}" x2="${x(0.45)}" y2="${legendY - 4}" stroke="${series.colour}" stroke-width="3"/>` +
        `<text x="${x(0.47)}" y="${legendY}" font-size="12" ${FONT}>${escapeXml(series.name)}</text>`
      return `<polyline points="${path}" fill="none" stroke="${series.colour}" stroke-width="2.5"/>${dot}${legend}`
    }).join('')
    const diagonal = `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="${COLOURS.diagonal}" stroke-dasharray="5 4"/>`
    return panel(index, axes(rocPanel.title, 'false positive rate (1 - specificity)', 'true positive rate (sensitivity)') + diagonal + curves)
  }).join('')
  return svgDocument(panels.length, body)
}

/** Observed Stone fraction per P(Stone) bin against the diagonal, bar width = bin, shade = share of slices. */
export function reliabilityChart (title: string, bins: ReliabilityBin[]): string {
  const total = bins.reduce((sum, bin) => sum + bin.count, 0)
  const bars = bins.filter((bin) => bin.count > 0).map((bin) => {
    const opacity = 0.25 + 0.75 * Math.sqrt(bin.count / total)
    const top = y(bin.stoneFraction)
    return `<rect x="${x(bin.lower) + 1}" y="${top}" width="${(bin.upper - bin.lower) * PANEL - 2}" height="${y(0) - top}" fill="${COLOURS.model}" fill-opacity="${opacity.toFixed(2)}"/>` +
      `<circle cx="${x(bin.meanProbability)}" cy="${y(bin.stoneFraction)}" r="4" fill="#222"/>` +
      `<text x="${x((bin.lower + bin.upper) / 2)}" y="${Math.min(top - 4, y(0) - 4)}" font-size="10" text-anchor="middle" ${FONT}>${bin.count}</text>`
  }).join('')
  const diagonal = `<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="${COLOURS.diagonal}" stroke-dasharray="5 4"/>`
  return svgDocument(1, panel(0, axes(title, 'predicted P(Stone), 10 bins (dot: bin mean)', 'observed fraction of Stone slices') + bars + diagonal))
}
