import sharp from 'sharp'

export interface Series {
  label: string
  colour: string
  dashed?: boolean
  /** [concurrency, value] */
  points: Array<[number, number]>
}

export interface Panel {
  title: string
  yLabel: string
  series: Series[]
  /** Logarithmic y axis (latencies of the three contenders differ by orders of magnitude). */
  logY?: boolean
}

const W = 520
const H = 360
const M = { left: 70, right: 20, top: 40, bottom: 50 }

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function niceMax (value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value))
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= value) ?? 10 * magnitude
}

function panelSvg (panel: Panel, xs: number[], offsetX: number): string {
  const values = panel.series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) => Number.isFinite(y) && y > 0)
  const yMax = niceMax(Math.max(...values, 1))
  const yMin = panel.logY === true ? 10 ** Math.floor(Math.log10(Math.min(...values, yMax))) : 0
  const plotW = W - M.left - M.right
  const plotH = H - M.top - M.bottom
  // Concurrency levels are spaced evenly (1, 8, 32 would crowd on a linear axis).
  const x = (c: number): number => offsetX + M.left + (xs.indexOf(c) + 0.5) * plotW / xs.length
  const y = (v: number): number => panel.logY === true
    ? M.top + plotH * (1 - (Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin)))
    : M.top + plotH * (1 - v / yMax)
  const ticks = panel.logY === true
    ? Array.from({ length: Math.round(Math.log10(yMax / yMin)) + 1 }, (_, i) => yMin * 10 ** i)
    : [0, 0.25, 0.5, 0.75, 1].map((f) => f * yMax)
  const parts = [
    `<text x="${offsetX + W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escape(panel.title)}</text>`,
    `<text transform="translate(${offsetX + 16} ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escape(panel.yLabel)}</text>`,
    `<text x="${offsetX + M.left + plotW / 2}" y="${H - 10}" text-anchor="middle" font-size="12">concurrent connections</text>`
  ]
  for (const tick of ticks) {
    parts.push(`<line x1="${offsetX + M.left}" x2="${offsetX + W - M.right}" y1="${y(tick)}" y2="${y(tick)}" stroke="#ddd"/>`,
      `<text x="${offsetX + M.left - 6}" y="${y(tick) + 4}" text-anchor="end" font-size="11">${Number(tick.toPrecision(3))}</text>`)
  }
  for (const c of xs) parts.push(`<text x="${x(c)}" y="${H - M.bottom + 18}" text-anchor="middle" font-size="11">${c}</text>`)
  parts.push(`<rect x="${offsetX + M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`)
  panel.series.forEach((s, i) => {
    const points = s.points.filter(([, v]) => Number.isFinite(v) && v > 0)
    const path = points.map(([c, v]) => `${x(c).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
    parts.push(`<polyline points="${path}" fill="none" stroke="${s.colour}" stroke-width="2.5"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`)
    for (const [c, v] of points) parts.push(`<circle cx="${x(c)}" cy="${y(v)}" r="3.5" fill="${s.colour}"/>`)
    const ly = M.top + 14 + i * 16
    parts.push(`<line x1="${offsetX + M.left + 8}" x2="${offsetX + M.left + 28}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.colour}" stroke-width="2.5"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`,
      `<text x="${offsetX + M.left + 34}" y="${ly}" font-size="11">${escape(s.label)}</text>`)
  })
  return parts.join('\n')
}

/** Side-by-side line charts as one SVG, and the same rendered to PNG by sharp (librsvg). */
export async function renderChart (panels: Panel[], xs: number[], caption: string): Promise<{ svg: string, png: Buffer }> {
  const width = W * panels.length
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${H + 24}" font-family="DejaVu Sans, Arial, sans-serif">
<rect width="100%" height="100%" fill="white"/>
${panels.map((panel, i) => panelSvg(panel, xs, i * W)).join('\n')}
<text x="${width / 2}" y="${H + 14}" text-anchor="middle" font-size="11" fill="#555">${escape(caption)}</text>
</svg>`
  return { svg, png: await sharp(Buffer.from(svg)).png().toBuffer() }
}
