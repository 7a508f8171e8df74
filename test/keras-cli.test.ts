import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import * as ort from 'onnxruntime-node'
import t from 'tap'
import { readModelSpec } from '../inference/model-spec.js'
import { SHARED_DIR } from './keras/inputs.js'

const CLI = new URL('../cli/convert.ts', import.meta.url).pathname
const run = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> =>
  await promisify(execFile)(process.execPath, ['--import=tsx', CLI, ...args])
    .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }))
    .catch((error: { code: number, stdout: string, stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }))

const dir = await mkdtemp(join(tmpdir(), 'keras-cli-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })

t.test('npm run convert writes a loadable ONNX, its sidecar and one line per layer', async (t) => {
  const out = join(dir, 'four-class.onnx')
  const result = await run(join(SHARED_DIR, 'models/keras/mennaghanem-kidney-cnn-4class.h5'), out, '--classes', 'Cyst,Normal,Stone,Tumor')
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, /^input_layer \(InputLayer\) -> 128x128x3$/m)
  t.match(result.stdout, /^batch_normalization_3 \(BatchNormalization\) -> 16x16x192, 768 weights$/m)
  t.match(result.stdout, /Keras 3\.8\.0 Sequential, input 128x128x3 NHWC, 4 output\(s\) \(probabilities\)/)

  const spec = await readModelSpec(join(dir, 'four-class.json'))
  t.same(spec.classes, ['Cyst', 'Normal', 'Stone', 'Tumor'])
  t.match(spec, { input: { width: 128, height: 128, channels: 3, layout: 'NHWC', scale: 1 / 255 }, output: { kind: 'probabilities' } })
  t.match(spec.source, { kerasVersion: '3.8.0', sourceSha256: 'cb559652894a84ef2ab85a19313c9952bcb265e18cdfc1976e45c0e882616e62' })

  const session = await ort.InferenceSession.create(await readFile(out))
  t.teardown(async () => { await session.release() })
  const probabilities = (await session.run({ input: new ort.Tensor('float32', new Float32Array(128 * 128 * 3).fill(0.5), [1, 128, 128, 3]) })).output.data as Float32Array
  t.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'softmax output sums to 1')
})

t.test('a model the spec cannot describe fails with the reason and exit code 1, no stack trace', async (t) => {
  const result = await run(join(SHARED_DIR, 'models/keras/mennaghanem-kidney-cnn-4class.h5'), join(dir, 'unnamed.onnx'))
  t.equal(result.code, 1)
  t.match(result.stderr, /the model has 4 outputs: name them .*\[KERAS_MODEL_SPEC_INVALID\]/)
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace')
})
