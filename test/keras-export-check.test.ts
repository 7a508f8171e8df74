import { execFile } from 'node:child_process'
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { PYTHON, referenceNamedOutputs } from './keras/inputs.js'

const run = promisify(execFile)
const BUILDER = new URL('./keras/build_functional.py', import.meta.url).pathname
const EXPORT_SCRIPT = new URL('../model/training/convert-keras.ts', import.meta.url).pathname

const dir = await mkdtemp(join(tmpdir(), 'keras-export-check-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
await run(PYTHON, [BUILDER, dir])
const modelPath = join(dir, 'multi-output-k2.h5')

const input = Float32Array.from({ length: 3 * 12 * 10 * 3 }, (_, i) => Math.sin(i * 0.37))
const images = [0, 1, 2].map((i) => input.subarray(i * 360, (i + 1) * 360))
const reference = await referenceNamedOutputs(modelPath, images)

/** The pipeline's check files (export.py writes them from PyTorch; here the NumPy reference stands in). */
async function writeCheck (name: string, camShift: number, logitShift = 0): Promise<string> {
  const f32 = (rows: number[][]): Buffer => Buffer.from(Float32Array.from(rows.flat()).buffer)
  const cam = reference.cam.rows.map((row, i) => row.map((v, j) => (i === 1 && j === 5 ? v + camShift : v)))
  await writeFile(join(dir, `${name}-input.f32`), Buffer.from(input.buffer))
  await writeFile(join(dir, `${name}-logits.f32`), f32(reference.logits.rows.map((row, i) => row.map((v, j) => (i === 0 && j === 1 ? v + logitShift : v)))))
  await writeFile(join(dir, `${name}-cam.f32`), f32(cam))
  const check = {
    tolerance: 1e-4,
    input: { file: `${name}-input.f32`, dims: [3, 12, 10, 3] },
    expected: { logits: { file: `${name}-logits.f32`, dims: [3, 2] }, cam: { file: `${name}-cam.f32`, dims: [3, 2, 12, 10] } }
  }
  await writeFile(join(dir, `${name}.json`), JSON.stringify(check))
  return join(dir, `${name}.json`)
}

t.test('model/training/convert-keras.ts writes the ONNX when every output matches, and reports the differences', async (t) => {
  const out = join(dir, 'good.onnx')
  const { stdout } = await run(process.execPath, ['--import', 'tsx', EXPORT_SCRIPT, modelPath, out, await writeCheck('good', 0)])
  const report = JSON.parse(stdout.trim().split('\n').at(-1)!)
  t.match(report, { inputName: 'input', layout: 'NHWC', inputDims: [null, 12, 10, 3], outputNames: ['logits', 'back', 'cam', 'swapped'], images: 3 })
  t.ok(report.outputs.logits.maxAbsDiff <= 1e-4 && report.outputs.cam.maxAbsDiff <= 1e-4, JSON.stringify(report.outputs))
  await t.resolves(access(out), 'ONNX written')
})

t.test('a cam value off by 1e-3 fails loudly and leaves no ONNX behind', async (t) => {
  const out = join(dir, 'bad.onnx')
  const error = await run(process.execPath, ['--import', 'tsx', EXPORT_SCRIPT, modelPath, out, await writeCheck('bad', 1e-3)]).catch((e: unknown) => e)
  t.match(error, { code: 1 })
  // cam's largest value here is about 2, so 2e-4 is allowed (the tolerance is relative above magnitude 1)
  t.match((error as { stderr: string }).stderr, /output "cam": max \|ONNX - PyTorch\| 0\.00099\d* > 0\.0002\d* \(0\.0001 x max\(1, max \|PyTorch\| 2\.00\d*\)\)/)
  await t.rejects(access(out), 'no ONNX written')
})

t.test('the logits, which the service reads, stay absolute: off by 1.5e-4 at a largest value of 2 fails', async (t) => {
  const out = join(dir, 'logits.onnx')
  const error = await run(process.execPath, ['--import', 'tsx', EXPORT_SCRIPT, modelPath, out, await writeCheck('logits', 0, 1.5e-4)]).catch((e: unknown) => e)
  t.match(error, { code: 1 })
  t.match((error as { stderr: string }).stderr, /output "logits": max \|ONNX - PyTorch\| 0\.00014\d* > 0\.0001 /)
  await t.rejects(access(out), 'no ONNX written')
})

t.test('above magnitude 1 the tolerance of the other outputs scales: cam off by 1.5e-4 at a largest value of 2 passes', async (t) => {
  const out = join(dir, 'scaled.onnx')
  const { stdout } = await run(process.execPath, ['--import', 'tsx', EXPORT_SCRIPT, modelPath, out, await writeCheck('scaled', 1.5e-4)])
  const report = JSON.parse(stdout.trim().split('\n').at(-1)!)
  t.ok(report.outputs.cam.maxAbsDiff > 1e-4 && report.outputs.cam.maxAbs > 1.5, JSON.stringify(report.outputs.cam))
  await t.resolves(access(out), 'ONNX written')
})
