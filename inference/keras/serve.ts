import { createHash } from 'node:crypto'
import { access, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readModelSpec, sidecarPathFor, type ModelSpec } from '../model-spec.js'
import { convertKerasModel, type KerasModelFacts } from './convert.js'
import { kerasModelSpec, mergeOverrides, readKerasSidecar, type KerasSpecOverrides } from './spec.js'

export interface ServableModel {
  onnxPath: string
  spec: ModelSpec
}

export interface ResolveOptions {
  /** Where converted models are kept, named by the Keras file's sha256. */
  cacheDir: string
  /** Applied over the user sidecar (e.g. from MODEL_CLASSES / MODEL_SCALE). */
  overrides?: KerasSpecOverrides
}

const KERAS_EXTENSION = /\.(h5|keras)$/i

export function isKerasModelPath (modelPath: string): boolean {
  return KERAS_EXTENSION.test(modelPath)
}

/** Write-then-rename, so a concurrent reader never sees half a file. */
async function writeAtomically (path: string, data: Uint8Array | string): Promise<void> {
  const partial = `${path}.${process.pid}.partial`
  await writeFile(partial, data)
  await rename(partial, path)
}

async function cachedFacts (onnxPath: string, factsPath: string): Promise<KerasModelFacts | undefined> {
  try {
    await access(onnxPath)
    return JSON.parse(await readFile(factsPath, 'utf8')) as KerasModelFacts
  } catch {
    return undefined
  }
}

/**
 * An `.onnx` model is served as is, with its sidecar. A Keras `.h5`/`.keras` model is converted once
 * (cached by the file's sha256, so an edited file is converted again) and gets a sidecar built from the
 * file's facts and the user's overrides, written next to the cached ONNX where the classifier looks for it.
 */
export async function resolveServableModel (modelPath: string, options: ResolveOptions): Promise<ServableModel> {
  if (!isKerasModelPath(modelPath)) return { onnxPath: modelPath, spec: await readModelSpec(sidecarPathFor(modelPath)) }

  const sha256 = createHash('sha256').update(await readFile(modelPath)).digest('hex')
  await mkdir(options.cacheDir, { recursive: true })
  const onnxPath = join(options.cacheDir, `${sha256}.onnx`)
  const factsPath = join(options.cacheDir, `${sha256}.keras-facts.json`)
  let facts = await cachedFacts(onnxPath, factsPath)
  if (facts === undefined) {
    // Unpacked beside the cache, on its volume: /tmp is a 64 MiB tmpfs in the container and the Deployment, which a
    // .keras model's weights above that filled (ENOSPC at start-up), in memory the pod is charged for.
    const conversion = await convertKerasModel(modelPath, options.cacheDir)
    await writeAtomically(onnxPath, conversion.onnx)
    await writeAtomically(factsPath, JSON.stringify(conversion.facts, null, 2))
    facts = conversion.facts
  }
  const overrides = mergeOverrides(await readKerasSidecar(sidecarPathFor(modelPath)), options.overrides ?? {})
  const spec = kerasModelSpec(facts, modelPath, overrides)
  await writeAtomically(sidecarPathFor(onnxPath), JSON.stringify(spec, null, 2))
  return { onnxPath, spec }
}
