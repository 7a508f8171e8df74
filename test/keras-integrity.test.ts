import { execFile } from 'node:child_process'
import { access, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { convertKerasModel } from '../inference/keras/convert.js'
import { noise } from './hostile/craft.js'

// The converter refuses damaged Keras files with a typed error instead of converting garbage weights. The
// project's own model is damaged here at run time; the checksummed copy is written by Debian's h5py
// (installed by `npm test`'s pretest step).
const PYTHON = '/usr/bin/python3'
const MODEL = new URL('../model/kidney-stone-cnn.h5', import.meta.url).pathname
const CLI = new URL('../cli/convert.ts', import.meta.url).pathname
const run = promisify(execFile)

const dir = await mkdtemp(join(tmpdir(), 'keras-integrity-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })

/** A copy of `source` with 4 KiB overwritten in the middle of the file. */
async function damaged (source: string, fill: Buffer, name: string): Promise<string> {
  const bytes = Buffer.from(await readFile(source))
  fill.copy(bytes, Math.floor(bytes.length / 2) - fill.length / 2)
  const path = join(dir, name)
  await writeFile(path, bytes)
  return path
}

const refusal = async (path: string): Promise<{ code?: string, message?: string }> =>
  await convertKerasModel(path).then(() => ({}), (error: { code?: string, message?: string }) => ({ code: error.code, message: error.message }))

t.test('4 KiB overwritten in the middle of the project .h5 is refused: random bytes and zeros', async (t) => {
  t.same(await refusal(MODEL), {}, 'the intact file converts')
  const random = await refusal(await damaged(MODEL, noise(4096, 42), 'random.h5'))
  t.equal(random.code, 'KERAS_DAMAGED_FILE')
  t.match(random.message, /^The Keras file is damaged: weight \w+\/kernel holds -?[\d.e+]+ at index \d+, which no trained network does\.$/)
  const zeros = await refusal(await damaged(MODEL, Buffer.alloc(4096), 'zeros.h5'))
  t.equal(zeros.code, 'KERAS_DAMAGED_FILE')
  t.match(zeros.message, /repeats the value 0 1024 times in a row \(4 KiB\)/)
})

t.test('a file with HDF5 checksums: converts intact, refused by its Fletcher-32 checksum when damaged', async (t) => {
  const checksummed = join(dir, 'checksummed.h5')
  await run(PYTHON, [new URL('keras/with_checksums.py', import.meta.url).pathname, MODEL, checksummed])
  const intact = await convertKerasModel(checksummed)
  const original = await convertKerasModel(MODEL)
  t.same(intact.summary, original.summary, 'same layers and weight counts as the original')
  const zeros = await refusal(await damaged(checksummed, Buffer.alloc(4096), 'checksummed-zeros.h5'))
  t.same(zeros, { code: 'KERAS_DAMAGED_FILE', message: zeros.message })
  t.match(zeros.message, /cannot be read: HDF5 found its data or its checksum damaged/)
})

t.test('a weight whose stored shape disagrees with its layer config is refused', async (t) => {
  const reshaped = join(dir, 'reshaped.h5')
  await copyFile(MODEL, reshaped)
  // conv2d_1's kernel keeps only its first 16 filters, as a damaged dataset header would describe it (printed: the
  // shape it had, so that the message can be checked whatever the shipped network's layers are).
  const { stdout } = await run(PYTHON, ['-c', [
    'import sys, h5py',
    'f = h5py.File(sys.argv[1], "r+")',
    'path = "model_weights/conv2d_1/conv2d_1/kernel:0"',
    'print("x".join(map(str, f[path].shape)))',
    'data = f[path][()][..., :16]',
    'del f[path]',
    'f.create_dataset(path, data=data)',
    'f.close()'
  ].join('\n'), reshaped])
  const [height, width, inputs, filters] = stdout.trim().split('x')
  t.ok(Number(filters) > 16, `conv2d_1 had ${filters} filters`)
  const result = await refusal(reshaped)
  t.equal(result.code, 'KERAS_DAMAGED_FILE')
  t.equal(result.message, `The Keras file is damaged: layer "conv2d_1" (Conv2D): weight "kernel" has shape ${height}x${width}x${inputs}x16, its config implies ${height}x${width}x?x${filters}.`)
})

t.test('npm run convert refuses a damaged file with the typed message, exit code 1, and writes nothing', async (t) => {
  const path = await damaged(MODEL, noise(4096, 7), 'cli.h5')
  const out = join(dir, 'cli.onnx')
  const result = await run(process.execPath, ['--import=tsx', CLI, path, out])
    .then(() => ({ code: 0, stderr: '' }), (error: { code: number, stderr: string }) => error)
  t.equal(result.code, 1)
  t.match(result.stderr, /^convert: The Keras file is damaged: weight .+ \[KERAS_DAMAGED_FILE\]$/m)
  t.notMatch(result.stderr, /HDF5-DIAG|at .+\.ts/, 'no library trace or stack')
  await t.rejects(access(out), 'no ONNX file written')
})
