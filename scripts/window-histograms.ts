/**
 * How the model's DICOM input window was chosen: grey-level histograms of the shared CT DICOM slices windowed at
 * candidate windows, compared with the histogram of the ct-kidney training slices (the PACS exports the model learned
 * from). Prints a Markdown table: Earth mover's distance (mean |grey difference| to move one histogram onto the
 * other, in grey levels) over all pixels and over the body (grey > 0), and the share of white (255) pixels.
 *
 * Usage: npx tsx scripts/window-histograms.ts [training slices sampled, default 400]
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import { readModalityFrames } from '../inference/dicom/decode-dicom.js'
import { windowValue } from '../inference/dicom/voi.js'

const SHARED = new URL('../../shared/data/', import.meta.url).pathname
const CANDIDATES = [[40, 400], [50, 350], [40, 350], [50, 400], [60, 400], [30, 300], [40, 500], [0, 600], [100, 700], [300, 1500], [-600, 1500]]

type Histogram = Float64Array

function normalised (counts: Float64Array): Histogram {
  const total = counts.reduce((a, b) => a + b, 0)
  return counts.map((count) => count / total)
}

/** Earth mover's distance between two 1-D histograms over 0..255: the sum of |CDF difference|. */
function emd (a: Histogram, b: Histogram): number {
  let cdf = 0; let distance = 0
  for (let i = 0; i < 256; i++) { cdf += a[i] - b[i]; distance += Math.abs(cdf) }
  return distance
}

function body (histogram: Float64Array): Histogram {
  const copy = Float64Array.from(histogram)
  copy[0] = 0
  return normalised(copy)
}

async function trainingHistogram (sample: number): Promise<Float64Array> {
  const counts = new Float64Array(256)
  for (const label of ['normal', 'stone']) {
    const dir = join(SHARED, 'ct-kidney/train', label)
    const names = (await readdir(dir)).sort()
    const step = Math.max(1, Math.floor(names.length / (sample / 2)))
    for (const name of names.filter((_, i) => i % step === 0).slice(0, sample / 2)) {
      const { data } = await sharp(await readFile(join(dir, name))).greyscale().raw().toBuffer({ resolveWithObject: true })
      for (const grey of data) counts[grey]++
    }
  }
  return counts
}

const DICOM_FILES = ['ct1-unc-explicit-little-endian.dcm', 'ct-small-pydicom.dcm']

async function dicomHistogram (window: { center: number, width: number }, names = DICOM_FILES): Promise<Float64Array> {
  const counts = new Float64Array(256)
  for (const name of names) {
    const { frames: [hu] } = await readModalityFrames(await readFile(join(SHARED, 'dicom', name)), 1_000_000)
    for (const value of hu) counts[Math.round(windowValue(value, window))]++
  }
  return counts
}

const sample = Number(process.argv[2] ?? 400)
const training = await trainingHistogram(sample)
const trainingAll = normalised(training)
const trainingBody = body(training)
console.log(`ct-kidney train: ${sample} slices sampled evenly (half normal, half stone); white (255): ${(trainingAll[255] * 100).toFixed(2)} % of pixels, ` +
  `${(trainingBody[255] * 100).toFixed(2)} % of the body\n`)
console.log('| window (centre/width HU) | EMD, all pixels | EMD, body (grey > 0) | body EMD, CT1 alone | body EMD, CT_small alone | white pixels (% of body) |')
console.log('|---|---|---|---|---|---|')
for (const [center, width] of CANDIDATES) {
  const counts = await dicomHistogram({ center, width })
  const inBody = body(counts)
  const alone = await Promise.all(DICOM_FILES.map(async (name) => emd(body(await dicomHistogram({ center, width }, [name])), trainingBody).toFixed(1)))
  console.log(`| ${center}/${width} | ${emd(normalised(counts), trainingAll).toFixed(1)} | ${emd(inBody, trainingBody).toFixed(1)} | ${alone.join(' | ')} | ${(inBody[255] * 100).toFixed(2)} |`)
}
