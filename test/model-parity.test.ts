import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { Classifier } from '../inference/classifier.js'
import { SHARED } from './helper.js'

/**
 * The PyTorch pipeline saved the probabilities of the network it trained for real slices; the service's
 * TypeScript path (decode -> preprocess -> onnxruntime -> temperature softmax) must reproduce them, so a
 * preprocessing or export mismatch between training and serving cannot go unnoticed.
 */
interface ParityImage {
  /** Relative to the shared folder (`../shared` from the repo). */
  path: string
  label: string
  /** In the sidecar's class order: [P(Normal), P(Stone)]. */
  probabilities: number[]
}

const MODEL = new URL('../model/kidney-stone-cnn.onnx', import.meta.url).pathname
const TOLERANCE = 1e-3

const fixture = JSON.parse(await readFile(new URL('./fixtures/model-parity.json', import.meta.url), 'utf8')) as { items: ParityImage[] }

t.test('the fixture covers enough real images to be a meaningful check', async (t) => {
  t.ok(fixture.items.length >= 50, `${fixture.items.length} images`)
  t.ok(fixture.items.some((image) => image.label === 'Stone'), 'Stone slices are included')
  t.ok(fixture.items.some((image) => image.label === 'Normal'), 'Normal slices are included')
  t.ok(fixture.items.some((image) => image.path.includes('yildirim')), 'the second hospital is included')
})

t.test('TypeScript service path matches PyTorch probabilities within 1e-3', async (t) => {
  const classifier = await Classifier.load(MODEL, {
    intraOpThreads: 2, interOpThreads: 1, graphOptimization: 'all', maxPixels: 40_000_000
  })
  t.teardown(async () => { await classifier.close() })
  let worst = 0
  for (const image of fixture.items) {
    const result = await classifier.classify(await readFile(join(SHARED, image.path)))
    const served = classifier.spec.classes.map((name) => result.probabilities[name])
    const difference = Math.max(...served.map((p, i) => Math.abs(p - image.probabilities[i])))
    worst = Math.max(worst, difference)
    if (difference > TOLERANCE) t.fail(`${image.path}: served ${served.join(', ')} vs PyTorch ${image.probabilities.join(', ')}`)
  }
  t.ok(worst <= TOLERANCE, `largest difference ${worst.toExponential(2)} over ${fixture.items.length} images`)
})
