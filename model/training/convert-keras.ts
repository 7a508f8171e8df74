/**
 * The pipeline's ONNX export: converts the Keras 2 file train.py wrote with the project's own Keras converter
 * (inference/keras) and ships the ONNX only if every output matches PyTorch on the same tensors.
 *
 *   npx tsx model/training/convert-keras.ts MODEL.h5 OUT.onnx CHECK.json
 *
 * CHECK.json (written by export.py): { tolerance, input: { file, dims }, expected: { <output>: { file, dims } } },
 * raw little-endian float32 files; the input is the normalised tensor in the converted model's NHWC layout.
 * Prints one JSON line (input name/layout/dims, per-output max |ONNX - PyTorch|, bytes); exits 1 on a mismatch,
 * leaving OUT.onnx untouched. The tolerance is absolute for the first output; for the others it is relative to
 * their largest value above magnitude 1.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { convertKerasModel } from '../../inference/keras/convert.js'

interface TensorFile { file: string, dims: number[] }
interface Check { tolerance: number, input: TensorFile, expected: Record<string, TensorFile> }

const [modelPath, outPath, checkPath] = process.argv.slice(2)
if (checkPath === undefined) throw new Error('usage: convert-keras.ts MODEL.h5 OUT.onnx CHECK.json')

async function readTensor (tensor: TensorFile): Promise<Float32Array> {
  const bytes = await readFile(join(dirname(checkPath), tensor.file))
  const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
  if (values.length !== tensor.dims.reduce((a, b) => a * b, 1)) throw new Error(`${tensor.file}: ${values.length} values for dims ${tensor.dims.join('x')}`)
  return values
}

const check = JSON.parse(await readFile(checkPath, 'utf8')) as Check
const { onnx, facts } = await convertKerasModel(modelPath)
const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 2, interOpNumThreads: 1 })
const inputName = session.inputNames[0]
const results = await session.run({ [inputName]: new ort.Tensor('float32', await readTensor(check.input), check.input.dims) })
await session.release()

const problems: string[] = []
// The service reads the first output (the logits).
const servedOutput = Object.keys(check.expected)[0]
const outputs: Record<string, { dims: readonly number[], maxAbsDiff: number, maxAbs: number }> = {}
for (const [name, tensor] of Object.entries(check.expected)) {
  const result = results[name]
  if (result === undefined) {
    problems.push(`output "${name}" missing (the converted model has ${session.outputNames.join(', ')})`)
    continue
  }
  if (result.dims.join('x') !== tensor.dims.join('x')) problems.push(`output "${name}": dims ${result.dims.join('x')}, PyTorch ${tensor.dims.join('x')}`)
  const expected = await readTensor(tensor)
  const actual = result.data as Float32Array
  let maxAbsDiff = 0
  let maxAbs = 0
  for (let i = 0; i < expected.length; i++) {
    maxAbsDiff = Math.max(maxAbsDiff, Math.abs(actual[i] - expected[i]))
    maxAbs = Math.max(maxAbs, Math.abs(expected[i]))
  }
  // The first output (the logits the service reads) is held to the absolute tolerance. The others (the activation
  // map, values in the thousands) relative to their largest value above magnitude 1: float32 sums of a few thousand
  // terms differ in the last bits, which exceeds 1e-4 absolute at that scale.
  const allowed = check.tolerance * (name === servedOutput ? 1 : Math.max(1, maxAbs))
  // NaN never compares greater, so it must be caught explicitly.
  if (!(maxAbsDiff <= allowed)) problems.push(`output "${name}": max |ONNX - PyTorch| ${maxAbsDiff} > ${allowed} (${check.tolerance} x max(1, max |PyTorch| ${maxAbs}))`)
  outputs[name] = { dims: result.dims, maxAbsDiff, maxAbs }
}
if (session.outputNames[0] !== servedOutput) problems.push(`the first ONNX output is "${session.outputNames[0]}"; the service reads the first output`)

const report = {
  inputName,
  layout: facts.input.layout,
  inputDims: [null, facts.input.height, facts.input.width, facts.input.channels],
  outputNames: session.outputNames,
  outputs,
  images: check.input.dims[0],
  onnxBytes: onnx.length,
  kerasSha256: facts.sourceSha256
}
console.log(JSON.stringify(report))
if (problems.length > 0) {
  console.error(`convert-keras: the converted ${modelPath} does not match PyTorch, ${outPath} not written:\n  ${problems.join('\n  ')}`)
  process.exit(1)
}
const partial = `${outPath}.partial`
await writeFile(partial, onnx)
await rename(partial, outPath).catch(async (error: unknown) => { await rm(partial, { force: true }); throw error })
