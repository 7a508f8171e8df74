import type { WeightTensor } from './keras-file.js'
import type { KerasLayer } from './model-config.js'
import { KerasDamagedFileError, KerasFileError, UnsupportedKerasLayerError } from './errors.js'
import type { OnnxGraph } from './onnx-graph.js'

/**
 * A tensor of the graph being built. `shape` is always the Keras shape without the batch axis
 * (height, width, channels for images); `layout` says how the ONNX tensor really is ordered: ONNX
 * convolutions and pooling need NCHW, so image tensors switch layout lazily and switch back only where
 * the order matters to Keras semantics (Flatten, Dense, Reshape, softmax, the model output).
 */
export interface Value {
  name: string
  shape: number[]
  layout: 'keras' | 'nchw'
  /** The activation applied last, so the sidecar can tell probabilities from logits. */
  activation?: string
}

export type LayerWeights = Map<string, WeightTensor>

/** A weight's shape as a layer's config implies it; undefined where the config does not say (e.g. input channels). */
export type ExpectedShape = Array<number | undefined>

/** Turns one Keras layer call into ONNX nodes (inference/keras/layers.ts maps each layer class to one). */
export type Converter = (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]) => Value

export class ConversionContext {
  private readonly transposed = new Map<string, Value>()

  constructor (
    readonly graph: OnnxGraph,
    readonly kerasMajor: number,
    private readonly readWeights: (layer: KerasLayer, variableOrder: string[]) => LayerWeights
  ) {}

  toNchw (value: Value): Value {
    if (value.layout === 'nchw' || value.shape.length !== 3) return value
    return this.transpose(value, 'nchw', [0, 3, 1, 2])
  }

  toKeras (value: Value): Value {
    if (value.layout === 'keras') return value
    return this.transpose(value, 'keras', [0, 2, 3, 1])
  }

  private transpose (value: Value, layout: Value['layout'], perm: number[]): Value {
    const key = `${value.name}->${layout}`
    const cached = this.transposed.get(key)
    if (cached !== undefined) return cached
    const name = this.graph.node('Transpose', [value.name], `${value.name}_${layout}`, { perm })
    const result = { ...value, name, layout }
    this.transposed.set(key, result)
    return result
  }

  /**
   * The layer's weights by short name. `required` ones must exist; each weight named in `required` or `shapes` must
   * have the shape its layer's config implies (undefined: any size on that axis): a stored shape that disagrees
   * with the config is damage, not a model to guess about.
   */
  weights (layer: KerasLayer, variableOrder: string[], required: Record<string, ExpectedShape>, shapes: Record<string, ExpectedShape> = {}): LayerWeights {
    const weights = this.readWeights(layer, variableOrder)
    for (const name of Object.keys(required)) {
      if (!weights.has(name)) throw new KerasFileError(`layer "${layer.name}" (${layer.className}): weight "${name}" is missing`)
    }
    for (const [name, expected] of Object.entries({ ...shapes, ...required })) {
      const weight = weights.get(name)
      if (weight === undefined) continue
      if (weight.dims.length !== expected.length || expected.some((size, axis) => size !== undefined && size !== weight.dims[axis])) {
        throw new KerasDamagedFileError(`layer "${layer.name}" (${layer.className}): weight "${name}" has shape ${weight.dims.join('x')}, ` +
          `its config implies ${expected.map((size) => size ?? '?').join('x')}`)
      }
    }
    return weights
  }

  floatConstant (base: string, dims: number[], values: Float32Array | number[]): string {
    return this.graph.floatConstant(base, dims, values)
  }
}

/** Row-major N-d transpose of stored weights (e.g. a Keras kh,kw,in,out kernel to ONNX out,in,kh,kw). */
export function permute (weight: WeightTensor, perm: number[]): WeightTensor {
  const { dims, data } = weight
  const outDims = perm.map((axis) => dims[axis])
  const inStrides = dims.map((_, axis) => dims.slice(axis + 1).reduce((a, b) => a * b, 1))
  const out = new Float32Array(data.length)
  const index = new Array<number>(outDims.length).fill(0)
  for (let flat = 0; flat < data.length; flat++) {
    let source = 0
    for (let axis = 0; axis < perm.length; axis++) source += index[axis] * inStrides[perm[axis]]
    out[flat] = data[source]
    for (let axis = outDims.length - 1; axis >= 0; axis--) {
      if (++index[axis] < outDims[axis]) break
      index[axis] = 0
    }
  }
  return { dims: outDims, data: out }
}

/** `activation` as Keras 2 (a string) or Keras 3 (a string or a serialized function) stores it. */
function activationName (activation: unknown): string | undefined {
  if (activation === undefined || activation === null) return 'linear'
  if (typeof activation === 'string') return activation
  if (typeof activation === 'object' && typeof (activation as { config?: unknown }).config === 'string') {
    return (activation as { config: string }).config
  }
  return undefined
}

/** Keras 3 redefined hard_sigmoid as relu6(x + 3) / 6; Keras 2 used clip(0.2 x + 0.5). */
function hardSigmoidSlope (kerasMajor: number): number {
  return kerasMajor >= 3 ? 1 / 6 : 0.2
}

export function applyActivation (ctx: ConversionContext, value: Value, activation: unknown, layer: KerasLayer): Value {
  const name = activationName(activation)
  const base = `${layer.name}_${name ?? 'activation'}`
  const unary = (opType: string, attributes = {}): Value => ({ ...value, name: ctx.graph.node(opType, [value.name], base, attributes), activation: name })
  switch (name) {
    case 'linear':
      return value
    case 'relu': return unary('Relu')
    case 'sigmoid': return unary('Sigmoid')
    case 'tanh': return unary('Tanh')
    case 'elu': return unary('Elu', { alpha: { float: 1 } })
    // ONNX's defaults are Keras's constants rounded to float32.
    case 'selu': return unary('Selu')
    case 'softplus': return unary('Softplus')
    case 'hard_sigmoid': return unary('HardSigmoid', { alpha: hardSigmoidSlope(ctx.kerasMajor), beta: 0.5 })
    case 'softmax': {
      const channelsLast = ctx.toKeras(value)
      return { ...channelsLast, name: ctx.graph.node('Softmax', [channelsLast.name], base, { axis: -1 }), activation: name }
    }
    case 'swish':
    case 'silu': {
      const gate = ctx.graph.node('Sigmoid', [value.name], `${base}_gate`)
      return { ...value, name: ctx.graph.node('Mul', [value.name, gate], base), activation: name }
    }
    case 'gelu': {
      // Exact GELU (Keras's default, approximate=False): x * 0.5 * (1 + erf(x / sqrt 2)).
      const scaled = ctx.graph.node('Div', [value.name, ctx.floatConstant(`${base}_sqrt2`, [], [Math.SQRT2])], `${base}_scaled`)
      const erf = ctx.graph.node('Erf', [scaled], `${base}_erf`)
      const onePlus = ctx.graph.node('Add', [erf, ctx.floatConstant(`${base}_one`, [], [1])], `${base}_one_plus`)
      const half = ctx.graph.node('Mul', [onePlus, ctx.floatConstant(`${base}_half`, [], [0.5])], `${base}_half_gate`)
      return { ...value, name: ctx.graph.node('Mul', [value.name, half], base), activation: name }
    }
    default:
      throw new UnsupportedKerasLayerError(layer.name, layer.className, `activation ${JSON.stringify(activation)} is not supported`)
  }
}
