import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import t from 'tap'
import { convertKerasModel } from '../inference/keras/convert.js'
import { kerasModelSpec } from '../inference/keras/spec.js'
import { FIXTURE_DIR, REAL_KERAS_MODELS, SHARED_DIR, imageTensor, tensorSha256, type KerasFixture } from './keras/inputs.js'

const TOLERANCE = 1e-4

// Each published Keras model, converted here, must reproduce the independent NumPy reference
// (test/keras/reference.py) on real CT slices fed through the service's own preprocessing.
for (const model of REAL_KERAS_MODELS) {
  t.test(`${model.id}: converted ONNX matches the NumPy reference`, async (t) => {
    const fixture = JSON.parse(await readFile(join(FIXTURE_DIR, `${model.id}.json`), 'utf8')) as KerasFixture
    t.ok(fixture.images.length >= 20, `${fixture.images.length} real images`)
    const modelPath = join(SHARED_DIR, model.file)
    const { onnx, facts, summary } = await convertKerasModel(modelPath)
    t.equal(facts.sourceSha256, fixture.modelSha256, 'fixture was made from this very file')
    t.equal(facts.kerasVersion, fixture.kerasVersion)
    t.equal(summary.length > 3, true, 'one summary line per layer')

    const spec = kerasModelSpec(facts, modelPath, {
      classes: 'classes' in model ? [...model.classes] : undefined,
      input: { scale: fixture.input.scale, resize: fixture.input.resize as 'fill' }
    })
    const tensors = await Promise.all(fixture.images.map(async (image) => await imageTensor(image.path, spec)))
    tensors.forEach((tensor, i) => t.equal(tensorSha256(tensor), fixture.images[i].inputSha256, `same input tensor for ${fixture.images[i].path}`))

    const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 2, interOpNumThreads: 1 })
    t.teardown(async () => { await session.release() })
    const { height, width, channels } = facts.input
    const batch = new Float32Array(tensors.length * height * width * channels)
    tensors.forEach((tensor, i) => batch.set(tensor, i * tensor.length))
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', batch, [tensors.length, height, width, channels]) })
    const output = result[session.outputNames[0]].data as Float32Array

    const rowWidth = fixture.images[0].output.length
    t.equal(output.length, tensors.length * rowWidth, 'one output row per image')
    let maxDiff = 0
    fixture.images.forEach((image, i) => image.output.forEach((expected, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(output[i * rowWidth + j] - expected))
    }))
    t.comment(`${model.id}: max |onnx - reference| = ${maxDiff.toExponential(2)} over ${fixture.images.length} images`)
    t.ok(maxDiff <= TOLERANCE, `max abs diff ${maxDiff} <= ${TOLERANCE}`)
  })
}
