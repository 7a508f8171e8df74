import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { strFromU8, unzipSync } from 'fflate'
import { KerasDamagedFileError, KerasFileError } from './errors.js'
import { makeWorkDir, removeWorkDir } from './work-dir.js'

/** A stored weight: row-major float32 values and their Keras shape (e.g. a Conv2D kernel is kh, kw, in, out). */
export interface WeightTensor {
  dims: number[]
  data: Float32Array
}

/** Which layer's weights to read; `.keras` archives address layers by class and position, not by name. */
export interface LayerWeightsRef {
  name: string
  className: string
  /** Short weight names in the order Keras creates the layer's variables (e.g. kernel, bias). */
  variableOrder: string[]
}

export interface KerasModelFile {
  format: 'h5' | 'keras'
  kerasVersion: string
  /** The serialized model: `{ class_name, config }`. */
  modelConfig: Record<string, unknown>
  sha256: string
  /** Weights of one layer by short name (`kernel`, `bias`, `gamma`, ...); empty for weightless layers. */
  layerWeights: (layer: LayerWeightsRef) => Map<string, WeightTensor>
  close: () => Promise<void>
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])
const ZIP_SIGNATURE = Buffer.from([0x50, 0x4b, 0x03, 0x04])

type H5Module = typeof import('h5wasm/node').default
// Loaded with the first Keras file opened, not at import: h5wasm's WebAssembly build puts about 70 MB on the JS
// heap, which a service on an ONNX model would otherwise carry for its whole life.
let h5wasm: H5Module
/** The WebAssembly module behind it, for its error-handler switch. */
let hdf5: Awaited<H5Module['ready']>

type H5File = InstanceType<typeof h5wasm.File>
type H5Group = InstanceType<typeof h5wasm.Group>

/**
 * Opens a Keras 2 / Keras 3 `.h5` or a Keras 3 `.keras` archive, recognised by content, not by extension. A `.keras`
 * archive's weights are written to a private folder under `workDir` while they are read.
 */
export async function openKerasFile (path: string, workDir = tmpdir()): Promise<KerasModelFile> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (error) {
    throw new KerasFileError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'read error'}`)
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  if (bytes.subarray(0, 8).equals(HDF5_SIGNATURE)) return await openLegacyH5(path, sha256)
  if (bytes.subarray(0, 4).equals(ZIP_SIGNATURE)) return await openKerasArchive(bytes, sha256, workDir)
  throw new KerasFileError(`${path} is neither an HDF5 (.h5) nor a zip (.keras) Keras model file`)
}

async function openH5 (path: string, what: string): Promise<H5File> {
  h5wasm ??= (await import('h5wasm/node')).default
  hdf5 = await h5wasm.ready
  let file: H5File
  try {
    file = new h5wasm.File(path, 'r')
  } catch {
    throw new KerasFileError(`${what} is not a readable HDF5 file`)
  }
  // h5wasm reports a failed open with a negative id instead of throwing.
  if (file.file_id < 0n) throw new KerasFileError(`${what} is not a readable HDF5 file (truncated or corrupt)`)
  return file
}

function parseJson (text: string, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {}
  throw new KerasFileError(`${what} is not a JSON object`)
}

/** Larger than any trained weight (the largest in the project's and the three shared models: 26). */
const IMPLAUSIBLE_MAGNITUDE = 1e6
/** A stretch of one repeated value this long (4 KiB of float32) inside a tensor that otherwise varies. */
const SUSPICIOUS_RUN = 1024

/**
 * Keras HDF5 files carry no checksums of their own (superblock version 0, no Fletcher-32 filter): where a file has
 * them, HDF5 verifies them as the weight is read (a failure is reported below). Otherwise the values must be
 * possible for a trained network: finite, not astronomically large, and without kilobytes of one repeated value
 * in the middle of a tensor that otherwise varies (a block zeroed or overwritten on disk or in transfer). A tensor
 * that holds one value throughout (an untrained zero bias) is possible.
 */
function checkWeightValues (data: Float32Array, dims: number[], what: string): void {
  const expected = dims.reduce((a, b) => a * b, 1)
  if (data.length !== expected) throw new KerasDamagedFileError(`weight ${what} holds ${data.length} values for its shape ${dims.join('x')}`)
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length)
  let run = 1
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]) || Math.abs(data[i]) > IMPLAUSIBLE_MAGNITUDE) {
      throw new KerasDamagedFileError(`weight ${what} holds ${data[i]} at index ${i}, which no trained network does`)
    }
    run = i > 0 && words[i] === words[i - 1] ? run + 1 : 1
    if (run === SUSPICIOUS_RUN && run < data.length && words.some((word) => word !== words[i])) {
      throw new KerasDamagedFileError(`weight ${what} repeats the value ${data[i]} ${SUSPICIOUS_RUN} times in a row (4 KiB) ending at index ${i}, inside values that vary`)
    }
  }
}

function readWeight (file: H5File, path: string, what: string): WeightTensor {
  const entity = file.get(path)
  if (!(entity instanceof h5wasm.Dataset)) throw new KerasFileError(`weight ${what} is missing (${path})`)
  let value: unknown
  // HDF5 reports a failed read (a Fletcher-32 checksum that does not match, among others) on stderr and leaves the
  // buffer as it was; with its throwing handler the failure becomes an exception, turned into our typed error.
  hdf5.activate_throwing_error_handler()
  try {
    value = entity.value
  } catch {
    throw new KerasDamagedFileError(`weight ${what} cannot be read: HDF5 found its data or its checksum damaged`)
  } finally {
    hdf5.deactivate_throwing_error_handler()
  }
  const dims = entity.shape ?? []
  let data: Float32Array
  if (value instanceof Float32Array) data = value
  else if (value instanceof Float64Array) data = Float32Array.from(value)
  else throw new KerasFileError(`weight ${what} has unsupported dtype ${String(entity.dtype)}`)
  checkWeightValues(data, dims, what)
  return { dims, data }
}

/** Keras `model.save('x.h5')` (Keras 2 and 3): config in root attributes, weights under `model_weights/<layer>`. */
async function openLegacyH5 (path: string, sha256: string): Promise<KerasModelFile> {
  const file = await openH5(path, path)
  const attr = (name: string): unknown => file.attrs[name]?.value
  const configText = attr('model_config')
  if (typeof configText !== 'string') {
    file.close()
    throw new KerasFileError(`${path} is an HDF5 file without a Keras model_config (weights-only or not a Keras model)`)
  }
  const modelConfig = parseJson(configText, 'model_config')
  const weightsGroup = file.get('model_weights')
  const weightsRoot = weightsGroup instanceof h5wasm.Group ? 'model_weights' : ''
  const keras = attr('keras_version') ?? (weightsGroup instanceof h5wasm.Group ? weightsGroup.attrs.keras_version?.value : undefined)
  return {
    format: 'h5',
    kerasVersion: typeof keras === 'string' ? keras : 'unknown',
    modelConfig,
    sha256,
    layerWeights: (layer) => {
      const groupPath = weightsRoot === '' ? layer.name : `${weightsRoot}/${layer.name}`
      const group = file.get(groupPath)
      const weights = new Map<string, WeightTensor>()
      if (!(group instanceof h5wasm.Group)) return weights
      const names = group.attrs.weight_names?.value
      for (const weightName of Array.isArray(names) ? names : []) {
        // 'conv2d/kernel:0' (Keras 2) or 'sequential/conv2d/kernel' (Keras 3) -> 'kernel'
        const short = String(weightName).split('/').at(-1)?.replace(/:\d+$/, '') ?? ''
        weights.set(short, readWeight(file, `${groupPath}/${String(weightName)}`, `${layer.name}/${short}`))
      }
      return weights
    },
    close: async () => { file.close() }
  }
}

/** snake_case of a class name, as Keras names a layer's slot in a `.keras` weights file. */
function toSnakeCase (className: string): string {
  return className.replace(/\W+/g, '').replace(/(.)([A-Z][a-z]+)/g, '$1_$2').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase()
}

/** Keras 3 `model.save('x.keras')`: a zip of config.json, metadata.json and model.weights.h5. */
async function openKerasArchive (bytes: Buffer, sha256: string, workDir: string): Promise<KerasModelFile> {
  let entries: Record<string, Uint8Array>
  try {
    entries = unzipSync(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  } catch {
    throw new KerasFileError('the .keras archive is not a readable zip file')
  }
  if (entries['config.json'] === undefined) throw new KerasFileError('the zip archive has no config.json: not a .keras model')
  if (entries['model.weights.h5'] === undefined) {
    throw new KerasFileError('the .keras archive has no model.weights.h5 (only HDF5 weights are supported)')
  }
  const modelConfig = parseJson(strFromU8(entries['config.json']), 'config.json')
  const metadata = entries['metadata.json'] === undefined ? {} : parseJson(strFromU8(entries['metadata.json']), 'metadata.json')

  // h5wasm on Node reads real files only, so the weights are written to a private folder, removed if they cannot be
  // (and by a later conversion if this process is killed first: work-dir.ts).
  const dir = await makeWorkDir(workDir)
  const weightsPath = join(dir, 'model.weights.h5')
  let file: H5File
  try {
    try {
      await writeFile(weightsPath, entries['model.weights.h5'])
    } catch (error) {
      throw new KerasFileError(`cannot write the archive's weights (${entries['model.weights.h5'].length} bytes) to ${dir}: ${(error as NodeJS.ErrnoException).code ?? 'write error'}`)
    }
    file = await openH5(weightsPath, 'model.weights.h5 in the .keras archive')
  } catch (error) {
    await removeWorkDir(dir)
    throw error
  }

  // Slots are named after the class and its count among earlier layers of that class, in config order.
  const slots = new Map<string, string>()
  const slotCounts = new Map<string, number>()
  const config = modelConfig.config as { layers?: unknown } | undefined
  for (const entry of Array.isArray(config?.layers) ? config.layers as Array<{ class_name?: unknown, config?: { name?: unknown } }> : []) {
    if (typeof entry?.class_name !== 'string' || typeof entry.config?.name !== 'string') continue
    const base = toSnakeCase(entry.class_name)
    const seen = slotCounts.get(base)
    slotCounts.set(base, (seen ?? -1) + 1)
    slots.set(entry.config.name, seen === undefined ? base : `${base}_${seen + 1}`)
  }
  const varsGroup = (layer: LayerWeightsRef): H5Group | undefined => {
    // Older archives (Keras 2.13-3.x) addressed layers by their name instead of their class.
    for (const path of [`layers/${slots.get(layer.name) ?? layer.name}/vars`, `layers/${layer.name}/vars`, `_layer_checkpoint_dependencies/${layer.name}/vars`]) {
      const group = file.get(path)
      if (group instanceof h5wasm.Group) return group
    }
    return undefined
  }

  return {
    format: 'keras',
    kerasVersion: typeof metadata.keras_version === 'string' ? metadata.keras_version : 'unknown',
    modelConfig,
    sha256,
    layerWeights: (layer) => {
      const weights = new Map<string, WeightTensor>()
      const group = varsGroup(layer)
      if (group === undefined) return weights
      const count = group.keys().length
      if (count !== layer.variableOrder.length && count > 0) {
        throw new KerasFileError(`layer "${layer.name}" stores ${count} variables, expected ${layer.variableOrder.length} (${layer.variableOrder.join(', ')})`)
      }
      layer.variableOrder.forEach((short, index) => {
        if (count > 0) weights.set(short, readWeight(file, `${group.path}/${index}`, `${layer.name}/${short}`))
      })
      return weights
    },
    close: async () => {
      file.close()
      await removeWorkDir(dir)
    }
  }
}
