import { readFile } from 'node:fs/promises'
import t from 'tap'
import { readModelSpec } from '../inference/model-spec.js'
import { modified, scratchDir } from './helpers/dcmtk.js'
import { build, fileUpload, SHARED } from './helper.js'
import type { FastifyInstance } from 'fastify'

const CT1 = await readFile(`${SHARED}/data/dicom/ct1-unc-explicit-little-endian.dcm`)

/** CT1 (no window of its own) and the same HU carrying the windows real exports carry, set by dcmtk's dcmodify. */
async function windowVariants (t: Parameters<typeof scratchDir>[0]): Promise<Record<string, Buffer>> {
  const dir = await scratchDir(t)
  const window = async (centers: string, widths: string): Promise<Buffer> =>
    await modified(dir, CT1, { '(0028,1050)': centers, '(0028,1051)': widths })
  return {
    none: CT1,
    'abdomen 40/400': await window('40', '400'),
    'lung -600/1500': await window('-600', '1500'),
    'multi-value 40\\-600': await window('40\\-600', '400\\1500'),
    'multi-value -600\\40': await window('-600\\40', '1500\\400')
  }
}

async function stoneProbabilities (app: FastifyInstance, files: Record<string, Buffer>): Promise<Record<string, number>> {
  const probabilities: Record<string, number> = {}
  for (const [name, bytes] of Object.entries(files)) {
    const response = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes, 'slice.dcm', 'application/dicom') })
    if (response.statusCode !== 200) throw new Error(`${name}: ${response.statusCode} ${response.body}`)
    probabilities[name] = response.json().probabilities.Stone
  }
  return probabilities
}

t.test('the model sidecar names its input window, and the served model has one', async (t) => {
  const spec = await readModelSpec(new URL('../model/kidney-stone-cnn.json', import.meta.url).pathname)
  t.same(spec.input.window, { center: 40, width: 400 })
})

t.test('DICOM_WINDOW_SOURCE=model (default): the same HU give the same answer whatever window the file carries', async (t) => {
  const files = await windowVariants(t)
  const app = await build(t)
  const probabilities = await stoneProbabilities(app, files)
  t.comment(JSON.stringify(probabilities))
  const distinct = new Set(Object.values(probabilities))
  t.equal(distinct.size, 1, `one probability for ${Object.keys(files).length} windows: ${[...distinct].join(', ')}`)
})

t.test('DICOM_WINDOW_SOURCE=file keeps the old behaviour: the file\'s first window is applied', async (t) => {
  const files = await windowVariants(t)
  const app = await build(t, { config: { dicomWindowSource: 'file' } })
  const p = await stoneProbabilities(app, files)
  t.comment(JSON.stringify(p))
  t.equal(p['abdomen 40/400'], p.none, 'the file\'s window equals the model\'s: same answer')
  t.equal(p['multi-value 40\\-600'], p.none, 'the first of several windows is the one applied')
  t.not(p['lung -600/1500'], p.none, 'a lung window changes the grey levels the model sees')
  t.equal(p['multi-value -600\\40'], p['lung -600/1500'])
})
