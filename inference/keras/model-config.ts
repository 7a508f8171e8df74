import { KerasFileError, UnsupportedKerasLayerError } from './errors.js'

/** One output of one call of a layer, as Keras addresses it: [layer name, call index, output index]. */
export interface TensorRef {
  layer: string
  node: number
  tensor: number
}

export interface KerasLayer {
  name: string
  className: string
  config: Record<string, unknown>
  /** The inputs of each call of the layer (a layer shared by two branches has two calls). */
  calls: TensorRef[][]
}

/** Sequential and Functional models reduced to one shape: layers in dependency order, one input, outputs in model order. */
export interface KerasGraph {
  kind: 'Sequential' | 'Functional'
  input: { name: string, shape: Array<number | null> }
  layers: KerasLayer[]
  outputs: TensorRef[]
}

type Json = Record<string, unknown>

const NESTED_MODEL_CLASSES = new Set(['Sequential', 'Functional', 'Model'])

function isObject (value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function layerEntry (entry: unknown, index: number): { name: string, className: string, config: Json, raw: Json } {
  if (!isObject(entry) || typeof entry.class_name !== 'string' || !isObject(entry.config)) {
    throw new KerasFileError(`model config: layer #${index} has no class_name/config`)
  }
  const name = typeof entry.config.name === 'string' ? entry.config.name : typeof entry.name === 'string' ? entry.name : `layer_${index}`
  if (NESTED_MODEL_CLASSES.has(entry.class_name)) {
    throw new UnsupportedKerasLayerError(name, entry.class_name, 'nested models are not supported; save the model with its layers inlined')
  }
  return { name, className: entry.class_name, config: entry.config, raw: entry }
}

/** Keras 2 writes `batch_input_shape`, Keras 3 `batch_shape`; both include the batch axis. */
function batchShapeOf (config: Json): Array<number | null> | undefined {
  const shape = config.batch_shape ?? config.batch_input_shape
  return Array.isArray(shape) ? shape.map((d) => (typeof d === 'number' ? d : null)) : undefined
}

function refFrom (value: unknown): TensorRef | undefined {
  if (Array.isArray(value) && typeof value[0] === 'string') {
    return { layer: value[0], node: Number(value[1] ?? 0), tensor: Number(value[2] ?? 0) }
  }
  return undefined
}

/** `input_layers` / `output_layers`: `[name, 0, 0]` or a list of those. */
function refsFrom (value: unknown, what: string): TensorRef[] {
  const single = refFrom(value)
  if (single !== undefined) return [single]
  if (!Array.isArray(value)) throw new KerasFileError(`model config: ${what} is missing`)
  return value.map((item) => {
    const ref = refFrom(item)
    if (ref === undefined) throw new KerasFileError(`model config: ${what} has an unreadable entry`)
    return ref
  })
}

/** Keras 3 call arguments: keras tensors (`keras_history`) anywhere inside nested lists. */
function kerasTensorsIn (value: unknown, found: TensorRef[] = []): TensorRef[] {
  if (Array.isArray(value)) {
    for (const item of value) kerasTensorsIn(item, found)
  } else if (isObject(value) && value.class_name === '__keras_tensor__' && isObject(value.config)) {
    const ref = refFrom(value.config.keras_history)
    if (ref !== undefined) found.push(ref)
  }
  return found
}

function callsOf (raw: Json): TensorRef[][] {
  const nodes = Array.isArray(raw.inbound_nodes) ? raw.inbound_nodes : []
  return nodes.map((node: unknown) => {
    // Keras 3: { args: [...], kwargs: {...} }; Keras 2: [[name, node, tensor, kwargs], ...]
    if (isObject(node)) return kerasTensorsIn(node.args)
    if (Array.isArray(node)) return node.map((item) => refFrom(item)).filter((ref): ref is TensorRef => ref !== undefined)
    throw new KerasFileError('model config: unreadable inbound_nodes')
  })
}

function sequentialGraph (config: Json): KerasGraph {
  const entries = Array.isArray(config.layers) ? config.layers.map(layerEntry) : undefined
  if (entries === undefined || entries.length === 0) throw new KerasFileError('model config: the Sequential model has no layers')
  let input: KerasGraph['input']
  let rest = entries
  if (entries[0].className === 'InputLayer') {
    input = { name: entries[0].name, shape: batchShapeOf(entries[0].config) ?? [] }
    rest = entries.slice(1)
  } else {
    const shape = batchShapeOf(entries[0].config) ?? (Array.isArray(config.build_input_shape) ? batchShapeOf({ batch_shape: config.build_input_shape }) : undefined)
    if (shape === undefined) throw new KerasFileError('model config: the Sequential model records no input shape')
    input = { name: `${entries[0].name}_input`, shape }
  }
  let previous: TensorRef = { layer: input.name, node: 0, tensor: 0 }
  const layers = rest.map((entry) => {
    const layer: KerasLayer = { name: entry.name, className: entry.className, config: entry.config, calls: [[previous]] }
    previous = { layer: entry.name, node: 0, tensor: 0 }
    return layer
  })
  return { kind: 'Sequential', input, layers, outputs: [previous] }
}

function functionalGraph (config: Json): KerasGraph {
  const entries = Array.isArray(config.layers) ? config.layers.map(layerEntry) : []
  const inputs = refsFrom(config.input_layers, 'input_layers')
  const outputs = refsFrom(config.output_layers, 'output_layers')
  if (inputs.length !== 1 || outputs.length === 0) {
    throw new KerasFileError(`model config: ${inputs.length} inputs and ${outputs.length} outputs; only single-input models with at least one output can be served`)
  }
  const inputEntry = entries.find((entry) => entry.name === inputs[0].layer && entry.className === 'InputLayer')
  if (inputEntry === undefined) throw new KerasFileError(`model config: input layer "${inputs[0].layer}" not found`)
  const layers = entries
    .filter((entry) => entry !== inputEntry)
    .map((entry) => ({ name: entry.name, className: entry.className, config: entry.config, calls: callsOf(entry.raw) }))
  return {
    kind: 'Functional',
    input: { name: inputEntry.name, shape: batchShapeOf(inputEntry.config) ?? [] },
    layers,
    outputs
  }
}

/** Reads `{ class_name, config }` of a Sequential or Functional model, as Keras 2 or Keras 3 writes it. */
export function readModelGraph (modelConfig: Json): KerasGraph {
  const className = modelConfig.class_name
  const config = modelConfig.config
  if (!isObject(config)) throw new KerasFileError('model config: missing "config"')
  const graph = className === 'Sequential'
    ? sequentialGraph(config)
    : className === 'Functional' || className === 'Model'
      ? functionalGraph(config)
      : undefined
  if (graph === undefined) throw new KerasFileError(`model config: model class ${String(className)} is not Sequential or Functional`)
  const [, height, width, channels] = graph.input.shape
  if (graph.input.shape.length !== 4 || height == null || width == null || channels == null) {
    throw new KerasFileError(`model input shape ${JSON.stringify(graph.input.shape)}: an image input (batch, height, width, channels) with fixed sizes is required`)
  }
  return graph
}
