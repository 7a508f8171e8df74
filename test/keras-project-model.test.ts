import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import t from 'tap'
import { convertKerasModel } from '../inference/keras/convert.js'
import { resolveServableModel } from '../inference/keras/serve.js'
import { readModelSpec } from '../inference/model-spec.js'
import { imageTensor } from './keras/inputs.js'

const REPO = new URL('../', import.meta.url).pathname
const TOLERANCE = 1e-4

interface ParityFixture { items: Array<{ path: string, logits: number[] }> }

// The project's own network, also written as a Keras 2 HDF5 file by model/training/keras_h5.py: served the
// way MODEL_PATH=model/kidney-stone-cnn.h5 would serve it, it must give the PyTorch logits of
// test/fixtures/model-parity.json.
t.test('model/kidney-stone-cnn.h5 converted to ONNX gives the PyTorch logits', async (t) => {
  const fixture = JSON.parse(await readFile(join(REPO, 'test/fixtures/model-parity.json'), 'utf8')) as ParityFixture
  const cacheDir = await mkdtemp(join(tmpdir(), 'keras-project-'))
  t.teardown(async () => { await rm(cacheDir, { recursive: true, force: true }) })
  const { onnxPath, spec } = await resolveServableModel(join(REPO, 'model/kidney-stone-cnn.h5'), { cacheDir })

  // The shipped sidecar next to the .h5 supplies what the Keras file lacks; only the layout differs.
  const shipped = await readModelSpec(join(REPO, 'model/kidney-stone-cnn.json'))
  t.same({ ...spec.input, layout: shipped.input.layout }, shipped.input)
  t.equal(spec.input.layout, 'NHWC')
  t.match(spec, { classes: shipped.classes, threshold: shipped.threshold, temperature: shipped.temperature, output: shipped.output })

  const { width, height, channels } = spec.input
  const session = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: 2 })
  t.teardown(async () => { await session.release() })
  let maxDiff = 0
  for (let start = 0; start < fixture.items.length; start += 16) {
    const items = fixture.items.slice(start, start + 16)
    const batch = new Float32Array(items.length * width * height * channels)
    for (const [i, item] of items.entries()) batch.set(await imageTensor(item.path, spec), i * width * height * channels)
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', batch, [items.length, height, width, channels]) })
    const logits = result[session.outputNames[0]].data as Float32Array
    items.forEach((item, i) => item.logits.forEach((expected, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(logits[i * item.logits.length + j] - expected))
    }))
  }
  t.ok(fixture.items.length >= 20, `${fixture.items.length} images`)
  t.comment(`model/kidney-stone-cnn.h5: max |converted ONNX - PyTorch| logit diff = ${maxDiff.toExponential(2)} over ${fixture.items.length} images`)
  t.ok(maxDiff <= TOLERANCE, `max abs logit diff ${maxDiff} <= ${TOLERANCE}`)
})

// The shipped ONNX is made from the .h5 by the converter (model/training/convert-keras.ts): it must be that
// conversion, with the outputs evaluation reads (logits first for the service, then cam) and the input layout
// its sidecar states.
t.test('model/kidney-stone-cnn.onnx is the converted .h5: logits and cam, NHWC input as the sidecar says', async (t) => {
  const fixture = JSON.parse(await readFile(join(REPO, 'test/fixtures/model-parity.json'), 'utf8')) as ParityFixture
  const spec = await readModelSpec(join(REPO, 'model/kidney-stone-cnn.json'))
  t.equal(spec.input.layout, 'NHWC')
  const { onnx, facts } = await convertKerasModel(join(REPO, 'model/kidney-stone-cnn.h5'))
  t.same(facts.outputs.map((o) => o.name), ['logits', 'cam'])
  const shipped = await ort.InferenceSession.create(join(REPO, 'model/kidney-stone-cnn.onnx'), { intraOpNumThreads: 2 })
  const converted = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 2 })
  t.teardown(async () => { await shipped.release(); await converted.release() })
  t.same(shipped.outputNames, ['logits', 'cam'])

  const { width, height, channels } = spec.input
  const items = fixture.items.slice(0, 8)
  const batch = new Float32Array(items.length * width * height * channels)
  for (const [i, item] of items.entries()) batch.set(await imageTensor(item.path, spec), i * width * height * channels)
  const feeds = (session: ort.InferenceSession): Record<string, ort.Tensor> =>
    ({ [session.inputNames[0]]: new ort.Tensor('float32', batch, [items.length, height, width, channels]) })
  const [a, b] = [await shipped.run(feeds(shipped)), await converted.run(feeds(converted))]
  for (const name of ['logits', 'cam']) {
    const [x, y] = [a[name].data as Float32Array, b[name].data as Float32Array]
    t.same(a[name].dims, b[name].dims, `${name} dims`)
    t.ok(x.every((v, i) => Math.abs(v - y[i]) <= 1e-6), `${name}: shipped ONNX = converted .h5 within 1e-6`)
  }
  t.same(a.cam.dims.slice(0, 2), [items.length, 2])
})
