import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { unzipSync, zipSync } from 'fflate'
import * as ort from 'onnxruntime-node'
import t from 'tap'
import { convertKerasModel } from '../inference/keras/convert.js'
import { resolveServableModel } from '../inference/keras/serve.js'
import { KerasFileError, UnsupportedKerasLayerError } from '../inference/keras/errors.js'
import { kerasModelSpec } from '../inference/keras/spec.js'
import { FIXTURE_DIR, PYTHON, SHARED_DIR, imageTensor, referenceOutputs, type KerasFixture } from './keras/inputs.js'
import { mountTmpfs } from './helpers/tmpfs.js'

const TOLERANCE = 1e-4
const BUILDER = new URL('./keras/build_functional.py', import.meta.url).pathname

const dir = await mkdtemp(join(tmpdir(), 'keras-functional-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
// The models are written by the Python side (h5py), in the layouts Keras 2 and Keras 3 use.
const KERAS3_H5 = join(SHARED_DIR, 'models/keras/mennaghanem-kidney-cnn-4class.h5')
await promisify(execFile)(PYTHON, [BUILDER, dir, KERAS3_H5])

/** Seeded inputs in [-1, 2): values outside 0..1 also exercise the negative branches of the activations. */
function seededInputs (count: number, length: number): Float32Array[] {
  let state = 12345
  const next = (): number => { state = (state * 1103515245 + 12345) % 2147483648; return state / 2147483648 }
  return Array.from({ length: count }, () => Float32Array.from({ length }, () => next() * 3 - 1))
}

for (const file of ['functional-k2.h5', 'functional-k3.keras']) {
  t.test(`${file}: Functional model with Add/Multiply/Concatenate branches matches the NumPy reference`, async (t) => {
    const modelPath = join(dir, file)
    const { onnx, facts } = await convertKerasModel(modelPath)
    t.equal(facts.modelClass, 'Functional')
    t.equal(facts.format, file.endsWith('.keras') ? 'keras' : 'h5')
    t.same(facts.input, { height: 16, width: 16, channels: 3, layout: 'NHWC' })
    t.equal(facts.outputSize, 3)

    const inputs = seededInputs(6, 16 * 16 * 3)
    const expected = await referenceOutputs(modelPath, inputs)
    const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 })
    t.teardown(async () => { await session.release() })
    const batch = new Float32Array(inputs.length * inputs[0].length)
    inputs.forEach((input, i) => batch.set(input, i * input.length))
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', batch, [inputs.length, 16, 16, 3]) })
    const actual = result[session.outputNames[0]].data as Float32Array

    let maxDiff = 0
    let spread = 0
    expected.forEach((row, i) => row.forEach((value, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(actual[i * 3 + j] - value))
      spread = Math.max(spread, Math.abs(value - expected[0][j]))
    }))
    t.ok(spread > 1e-3, `outputs depend on the input (spread ${spread.toExponential(2)}), so the comparison is not trivial`)
    t.comment(`${file}: max |onnx - reference| = ${maxDiff.toExponential(2)}`)
    t.ok(maxDiff <= TOLERANCE, `max abs diff ${maxDiff} <= ${TOLERANCE}`)
  })
}

t.test('a Keras 3 Sequential model re-saved as a .keras archive matches the reference outputs of its .h5', async (t) => {
  const { onnx, facts } = await convertKerasModel(join(dir, 'sequential-k3.keras'))
  t.match(facts, { format: 'keras', kerasVersion: '3.8.0', modelClass: 'Sequential', outputSize: 4 })
  const fixture = JSON.parse(await readFile(join(FIXTURE_DIR, 'mennaghanem-kidney-cnn-4class.json'), 'utf8')) as KerasFixture
  const spec = kerasModelSpec(facts, 'sequential-k3.keras', { classes: ['Cyst', 'Normal', 'Stone', 'Tumor'], input: { scale: fixture.input.scale } })
  const images = fixture.images.slice(0, 6)
  const batch = new Float32Array(images.length * 128 * 128 * 3)
  for (const [i, image] of images.entries()) batch.set(await imageTensor(image.path, spec), i * 128 * 128 * 3)
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 })
  t.teardown(async () => { await session.release() })
  const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', batch, [images.length, 128, 128, 3]) })
  const output = result[session.outputNames[0]].data as Float32Array
  const maxDiff = Math.max(...images.flatMap((image, i) => image.output.map((expected, j) => Math.abs(output[i * 4 + j] - expected))))
  t.ok(maxDiff <= TOLERANCE, `max abs diff ${maxDiff} <= ${TOLERANCE}`)
})

t.test('a layer outside the supported list stops with an error naming the layer and its class', async (t) => {
  const error = await convertKerasModel(join(dir, 'unsupported-layer.h5')).catch((e: unknown) => e)
  t.type(error, UnsupportedKerasLayerError)
  t.match(error, { code: 'KERAS_UNSUPPORTED_LAYER', statusCode: 422, layerName: 'up_sampling2d', className: 'UpSampling2D' })
  t.match((error as Error).message, /up_sampling2d.*UpSampling2D/)
})

t.test('corrupt and non-Keras files get a typed error, not a crash', async (t) => {
  const real = await readFile(join(SHARED_DIR, 'models/keras/bhutani2002-kidney-stone-model.h5'))
  const archive = unzipSync(await readFile(join(dir, 'functional-k3.keras')))
  const cases: Record<string, Uint8Array> = {
    'not-a-model.h5': Buffer.from('this is a text file, not a model'),
    'truncated.h5': real.subarray(0, 4096),
    'weights-only.h5': archive['model.weights.h5'],
    'no-config.keras': zipSync({ 'metadata.json': archive['metadata.json'] }),
    'bad-json.keras': zipSync({ 'config.json': Buffer.from('{"class_name": '), 'model.weights.h5': archive['model.weights.h5'] })
  }
  for (const [name, bytes] of Object.entries(cases)) {
    const path = join(dir, name)
    await writeFile(path, bytes)
    const error = await convertKerasModel(path).catch((e: unknown) => e)
    t.type(error, KerasFileError, name)
    t.match(error, { code: 'KERAS_INVALID_FILE', statusCode: 422 }, name)
  }
  const missing = await convertKerasModel(join(dir, 'missing.h5')).catch((e: unknown) => e)
  t.type(missing, KerasFileError, 'missing file')
})

t.test('a .keras model served with a small /tmp: its weights are unpacked beside the model cache', async (t) => {
  // The container and the Deployment give /tmp a 64 MiB tmpfs; the weights were written there, so a model whose
  // weights exceed it stopped start-up with ENOSPC. Here a 1 MiB tmpfs and a 3.9 MB archive.
  const small = await mountTmpfs(t, '1m')
  const tmpdirBefore = process.env.TMPDIR
  process.env.TMPDIR = small.dir
  t.teardown(() => { if (tmpdirBefore === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = tmpdirBefore })
  const cacheDir = join(dir, 'cache-small-tmp')
  const served = await resolveServableModel(join(dir, 'sequential-k3.keras'), { cacheDir, overrides: { classes: ['Cyst', 'Normal', 'Stone', 'Tumor'] } })
  t.match(served.spec, { output: { kind: 'probabilities' } }, 'converted')
  t.same(await readdir(cacheDir).then((names) => names.filter((name) => name.startsWith('keras-weights-'))), [], 'the unpacked weights are removed')
})
