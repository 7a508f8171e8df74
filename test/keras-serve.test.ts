import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { resolveServableModel } from '../inference/keras/serve.js'
import { readModelSpec, sidecarPathFor } from '../inference/model-spec.js'
import { build, fileUpload } from './helper.js'
import { FIXTURE_DIR, SHARED_DIR, type KerasFixture } from './keras/inputs.js'

const dir = await mkdtemp(join(tmpdir(), 'keras-serve-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
// A user's own Keras model with its sidecar: the published 128x128 binary model, fed raw 0-255 pixels.
const kerasPath = join(dir, 'kidney.h5')
await copyFile(join(SHARED_DIR, 'models/keras/bhutani2002-kidney-stone-model.h5'), kerasPath)
await writeFile(join(dir, 'kidney.json'), JSON.stringify({ classes: ['Normal', 'Stone'], input: { scale: 1 }, threshold: 0.4 }))
const fixture = JSON.parse(await readFile(join(FIXTURE_DIR, 'bhutani2002-kidney-stone-model.json'), 'utf8')) as KerasFixture

t.test('a Keras file is converted once, cached by sha256, with the user sidecar and overrides applied', async (t) => {
  const cacheDir = join(dir, 'cache-resolve')
  const first = await resolveServableModel(kerasPath, { cacheDir })
  t.equal(first.onnxPath, join(cacheDir, `${fixture.modelSha256}.onnx`))
  t.match(first.spec, { classes: ['Normal', 'Stone'], threshold: 0.4, output: { kind: 'probabilities' } })
  t.match(first.spec.input, { width: 128, height: 128, channels: 3, layout: 'NHWC', scale: 1, resize: 'fill' })
  const convertedAt = (await stat(first.onnxPath)).mtimeMs

  const second = await resolveServableModel(kerasPath, { cacheDir, overrides: { input: { scale: 0.5 } } })
  t.equal(second.onnxPath, first.onnxPath)
  t.equal((await stat(second.onnxPath)).mtimeMs, convertedAt, 'the cached ONNX is reused, not converted again')
  t.equal(second.spec.input.scale, 0.5, 'overrides (MODEL_SCALE) win over the sidecar')
  t.equal(second.spec.threshold, 0.4, 'fields not overridden keep the sidecar value')
  t.same(await readModelSpec(sidecarPathFor(second.onnxPath)), second.spec, 'the sidecar the classifier reads is written next to the ONNX')

  const passThrough = await resolveServableModel(second.onnxPath, { cacheDir })
  t.equal(passThrough.onnxPath, second.onnxPath, 'an .onnx path is served as is')
  t.same(passThrough.spec, second.spec)
})

t.test('MODEL_PATH=<file.h5>: the service starts on the Keras file and answers like the reference', async (t) => {
  const app = await build(t, { config: { modelPath: kerasPath, modelCacheDir: join(dir, 'cache-app') } })
  const model = await app.inject({ method: 'GET', url: '/model' })
  t.equal(model.statusCode, 200, model.body)
  t.match(model.json(), { classes: ['Normal', 'Stone'], threshold: 0.4, preprocessing: { scale: 1, size: [128, 128] } })

  for (const image of fixture.images.slice(0, 4)) {
    const response = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await readFile(join(SHARED_DIR, image.path))) })
    t.equal(response.statusCode, 200, response.body)
    const stone = response.json().probabilities.Stone as number
    t.ok(Math.abs(stone - image.output[0]) <= 1e-4, `${image.path}: P(Stone) ${stone} vs reference ${image.output[0]}`)
    t.equal(response.json().prediction, image.output[0] >= 0.4 ? 'Stone' : 'Normal')
  }
})
