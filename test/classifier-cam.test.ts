import { readFile } from 'node:fs/promises'
import t from 'tap'
import { Classifier } from '../inference/classifier.js'
import { toProbabilities } from '../inference/postprocess.js'
import { loadConfig } from '../plugins/app/config.js'
import { ctKidneyFiles } from './helper.js'

// The classification carries the activation maps the model computed for exactly that image, so a stored record
// can draw its explanation later without re-running the model.

const { modelPath } = loadConfig()

t.test('every classification carries its own 2 x 14 x 14 activation maps, even inside a shared batch', async (t) => {
  const classifier = await Classifier.load(modelPath, { maxPixels: 50_000_000, intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'all' })
  t.teardown(async () => await classifier.close())
  const files = [...await ctKidneyFiles('test/stone', 4), ...await ctKidneyFiles('test/normal', 4)]
  const images = await Promise.all(files.map(async (file) => await readFile(file)))
  // submitted together: they share onnxruntime calls, so a row mix-up between images would show
  const results = await Promise.all(images.map(async (bytes) => await classifier.classify(bytes)))
  for (const [i, result] of results.entries()) {
    const cam = result.cam
    if (cam === undefined) { t.fail(`image ${i}: no cam`); continue }
    t.same(cam.dims, [2, 14, 14], `image ${i}: [classes, h, w]`)
    t.equal(cam.values.length, 2 * 14 * 14)
    // Models 2.x: the logits are [-m/2, m/2], m the spatial maximum of the Stone-minus-Normal evidence cam[1] - cam[0]
    // (docs/model.md): the probabilities recomputed from this image's maps must be the ones it was classified with.
    const plane = 14 * 14
    let peak = -Infinity
    for (let k = 0; k < plane; k++) peak = Math.max(peak, cam.values[plane + k] - cam.values[k])
    const logits = [-peak / 2, peak / 2]
    const [normal, stone] = toProbabilities(logits, classifier.spec)
    t.ok(Math.abs(stone - result.probabilities.Stone) < 1e-5 && Math.abs(normal - result.probabilities.Normal) < 1e-5,
      `image ${i}: P(Stone) ${result.probabilities.Stone.toFixed(5)} from its own maps (${stone.toFixed(5)})`)
  }
  t.ok(results.some((r) => r.prediction === 'Stone') && results.some((r) => r.prediction === 'Normal'), 'both classes among them')
})
