import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import * as ort from 'onnxruntime-node'
import t from 'tap'
import { convertKerasModel } from '../inference/keras/convert.js'
import { PYTHON, referenceNamedOutputs } from './keras/inputs.js'

const TOLERANCE = 1e-4
const BUILDER = new URL('./keras/build_functional.py', import.meta.url).pathname
// test/keras/build_functional.py: the output layers in model order (not layer order) and their Keras shapes.
const EXPECTED_OUTPUTS = [
  { name: 'logits', shape: [2] },
  { name: 'back', shape: [12, 10, 2] },
  { name: 'cam', shape: [2, 12, 10] },
  { name: 'swapped', shape: [10, 12, 2] }
]

const dir = await mkdtemp(join(tmpdir(), 'keras-multi-output-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
await promisify(execFile)(PYTHON, [BUILDER, dir])

function seededInputs (count: number, length: number): Float32Array[] {
  let state = 777
  const next = (): number => { state = (state * 1103515245 + 12345) % 2147483648; return state / 2147483648 }
  return Array.from({ length: count }, () => Float32Array.from({ length }, () => next() * 2 - 1))
}

for (const file of ['multi-output-k2.h5', 'multi-output-k3.keras']) {
  t.test(`${file}: every output, named after its Keras layer in model order, matches the NumPy reference`, async (t) => {
    const modelPath = join(dir, file)
    const { onnx, facts } = await convertKerasModel(modelPath)
    t.same(facts.outputs, EXPECTED_OUTPUTS)
    t.match(facts, { modelClass: 'Functional', outputSize: 2, outputActivation: 'linear' })

    const inputs = seededInputs(5, 12 * 10 * 3)
    const expected = await referenceNamedOutputs(modelPath, inputs)
    const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 })
    t.teardown(async () => { await session.release() })
    t.same(session.outputNames, EXPECTED_OUTPUTS.map((o) => o.name))
    const batch = new Float32Array(inputs.length * inputs[0].length)
    inputs.forEach((input, i) => batch.set(input, i * input.length))
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', batch, [inputs.length, 12, 10, 3]) })

    for (const { name, shape } of EXPECTED_OUTPUTS) {
      t.same(result[name].dims, [inputs.length, ...shape], `${name} dims`)
      t.same(expected[name].shape, shape, `${name}: reference shape`)
      const actual = result[name].data as Float32Array
      const rows = expected[name].rows
      let maxDiff = 0
      let spread = 0
      rows.forEach((row, i) => row.forEach((value, j) => {
        maxDiff = Math.max(maxDiff, Math.abs(actual[i * row.length + j] - value))
        spread = Math.max(spread, Math.abs(value - rows[0][0]))
      }))
      t.ok(spread > 1e-3, `${name}: values vary (spread ${spread.toExponential(2)}), so the comparison is not trivial`)
      t.ok(maxDiff <= TOLERANCE, `${name}: max |onnx - reference| ${maxDiff.toExponential(2)} <= ${TOLERANCE}`)
    }
  })
}

t.test('Permute moves the values of an image tensor like numpy.transpose', async (t) => {
  const { onnx } = await convertKerasModel(join(dir, 'multi-output-k2.h5'))
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 })
  t.teardown(async () => { await session.release() })
  const [input] = seededInputs(1, 12 * 10 * 3)
  const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, [1, 12, 10, 3]) })
  const back = result.back.data as Float32Array
  const cam = result.cam.data as Float32Array
  const swapped = result.swapped.data as Float32Array
  // back is HWC (12 x 10 x 2), cam CHW (2 x 12 x 10), swapped WHC (10 x 12 x 2): the same values, moved.
  let moved = 0
  for (let h = 0; h < 12; h++) {
    for (let w = 0; w < 10; w++) {
      for (let c = 0; c < 2; c++) {
        const value = back[(h * 10 + w) * 2 + c]
        if (cam[(c * 12 + h) * 10 + w] === value && swapped[(w * 12 + h) * 2 + c] === value) moved++
      }
    }
  }
  t.equal(moved, 12 * 10 * 2)
})
