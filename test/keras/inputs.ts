import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { ModelSpec } from '../../inference/model-spec.js'
import { decodeForModel } from '../../inference/preprocess.js'
import { toTensorData } from '../../inference/tensor.js'

export const SHARED_DIR = new URL('../../../shared/', import.meta.url).pathname
export const REFERENCE_SCRIPT = new URL('./reference.py', import.meta.url).pathname
export const FIXTURE_DIR = new URL('../fixtures/keras/', import.meta.url).pathname
export const PYTHON = '/usr/bin/python3'

/** The three published Keras models and the input scaling their authors' apps use (see shared/models/README.md). */
export const REAL_KERAS_MODELS = [
  { id: 'sufyankamil-kidneystonedetect', file: 'models/keras/sufyankamil-kidneystonedetect.h5', scale: 1 / 2040 },
  { id: 'bhutani2002-kidney-stone-model', file: 'models/keras/bhutani2002-kidney-stone-model.h5', scale: 1 },
  {
    id: 'mennaghanem-kidney-cnn-4class',
    file: 'models/keras/mennaghanem-kidney-cnn-4class.h5',
    scale: 1 / 255,
    classes: ['Cyst', 'Normal', 'Stone', 'Tumor']
  }
] as const

export interface KerasFixture {
  model: string
  modelSha256: string
  kerasVersion: string
  input: { width: number, height: number, channels: number, resize: string, scale: number }
  reference: string
  regenerate: string
  images: Array<{ path: string, inputSha256: string, output: number[] }>
}

/** A Float32 NHWC tensor of one image through the service's own decode + preprocess path. */
export async function imageTensor (sharedRelativePath: string, spec: ModelSpec): Promise<Float32Array> {
  const bytes = await readFile(join(SHARED_DIR, sharedRelativePath))
  return toTensorData(await decodeForModel(bytes, spec, { channels: spec.input.channels, maxPixels: 40_000_000 }), spec)
}

export function tensorSha256 (tensor: Float32Array): string {
  return createHash('sha256').update(Buffer.from(tensor.buffer, tensor.byteOffset, tensor.byteLength)).digest('hex')
}

interface ReferenceResult {
  outputs: number[][]
  named: Record<string, { shape: number[], rows: number[][] }>
}

/** Runs test/keras/reference.py on tensors laid end to end. */
async function runReference (modelPath: string, tensors: Float32Array[]): Promise<ReferenceResult> {
  const dir = await mkdtemp(join(tmpdir(), 'keras-reference-'))
  try {
    const inputsPath = join(dir, 'inputs.f32')
    await writeFile(inputsPath, Buffer.concat(tensors.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength))))
    const { stdout } = await promisify(execFile)(PYTHON, [REFERENCE_SCRIPT, modelPath, inputsPath, String(tensors.length)],
      { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, OMP_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2' } })
    return JSON.parse(stdout) as ReferenceResult
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** One row of model outputs per tensor (every output flattened, in model order). */
export async function referenceOutputs (modelPath: string, tensors: Float32Array[]): Promise<number[][]> {
  return (await runReference(modelPath, tensors)).outputs
}

/** Each output by its Keras layer name: shape without the batch axis and one flattened row per tensor. */
export async function referenceNamedOutputs (modelPath: string, tensors: Float32Array[]): Promise<ReferenceResult['named']> {
  return (await runReference(modelPath, tensors)).named
}
