import { applyActivation, permute, type ConversionContext, type Converter, type LayerWeights, type Value } from './context.js'
import { UnsupportedKerasLayerError } from './errors.js'
import { concatenate, elementwise } from './merge-layers.js'
import type { KerasLayer } from './model-config.js'
import { permuteLayer } from './permute.js'

function pair (value: unknown, fallback: number): [number, number] {
  if (typeof value === 'number') return [value, value]
  if (Array.isArray(value) && value.length === 2) return [Number(value[0]), Number(value[1])]
  return [fallback, fallback]
}

function single (layer: KerasLayer, inputs: Value[], rank?: number): Value {
  if (inputs.length !== 1) throw new UnsupportedKerasLayerError(layer.name, layer.className, `expected 1 input, got ${inputs.length}`)
  if (rank !== undefined && inputs[0].shape.length !== rank) {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `expected a rank-${rank + 1} input, got shape (batch, ${inputs[0].shape.join(', ')})`)
  }
  return inputs[0]
}

function requireChannelsLast (layer: KerasLayer): void {
  if (layer.config.data_format === 'channels_first') {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, 'data_format channels_first is not supported (channels-last only)')
  }
}

/** Output size and ONNX begin/end pads of one spatial axis, with TensorFlow's 'same' rule (extra pad at the end). */
function window (size: number, kernel: number, stride: number, dilation: number, padding: unknown): { out: number, begin: number, end: number } {
  const span = (kernel - 1) * dilation + 1
  if (padding === 'same') {
    const out = Math.ceil(size / stride)
    const total = Math.max((out - 1) * stride + span - size, 0)
    return { out, begin: Math.floor(total / 2), end: total - Math.floor(total / 2) }
  }
  return { out: Math.floor((size - span) / stride) + 1, begin: 0, end: 0 }
}

interface SpatialOptions { kernel: [number, number], strides: [number, number], dilations: [number, number] }

function spatial (layer: KerasLayer, x: Value, options: SpatialOptions): { outHW: [number, number], attributes: Record<string, number[]> } {
  const padding = layer.config.padding ?? 'valid'
  if (padding !== 'valid' && padding !== 'same') {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `padding ${JSON.stringify(padding)} is not supported`)
  }
  const rows = window(x.shape[0], options.kernel[0], options.strides[0], options.dilations[0], padding)
  const cols = window(x.shape[1], options.kernel[1], options.strides[1], options.dilations[1], padding)
  if (rows.out < 1 || cols.out < 1) throw new UnsupportedKerasLayerError(layer.name, layer.className, `input ${x.shape.join('x')} is smaller than the window`)
  return {
    outHW: [rows.out, cols.out],
    attributes: { kernel_shape: options.kernel, strides: options.strides, pads: [rows.begin, cols.begin, rows.end, cols.end] }
  }
}

/** Variable names in creation order; Keras creates no bias when use_bias is false. */
function variables (layer: KerasLayer, ...names: string[]): string[] {
  return layer.config.use_bias === false ? names : [...names, 'bias']
}

function convOptions (layer: KerasLayer, kernel: [number, number]): SpatialOptions {
  return { kernel, strides: pair(layer.config.strides, 1), dilations: pair(layer.config.dilation_rate, 1) }
}

/** A config entry that should be a positive integer, or undefined when it is not one (the check then skips it). */
function configSize (value: unknown): number | undefined {
  const size = Number(value)
  return Number.isInteger(size) && size > 0 ? size : undefined
}

function kernelSize (layer: KerasLayer): [number | undefined, number | undefined] {
  const size = layer.config.kernel_size
  return Array.isArray(size) ? [configSize(size[0]), configSize(size[1])] : [configSize(size), configSize(size)]
}

function conv2d (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  requireChannelsLast(layer)
  const x = single(layer, inputs, 3)
  const filters = configSize(layer.config.filters)
  const weights = ctx.weights(layer, variables(layer, 'kernel'), { kernel: [...kernelSize(layer), undefined, filters] }, { bias: [filters] })
  const kernel = weights.get('kernel')!
  const [kh, kw, inPerGroup, outputs] = kernel.dims
  const groups = Number(layer.config.groups ?? 1)
  if (inPerGroup * groups !== x.shape[2]) {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `kernel expects ${inPerGroup * groups} input channels, input has ${x.shape[2]}`)
  }
  const options = convOptions(layer, [kh, kw])
  const { outHW, attributes } = spatial(layer, x, options)
  const w = permute(kernel, [3, 2, 0, 1])
  const convInputs = [ctx.toNchw(x).name, ctx.floatConstant(`${layer.name}_kernel`, w.dims, w.data)]
  const bias = weights.get('bias')
  if (bias !== undefined) convInputs.push(ctx.floatConstant(`${layer.name}_bias`, bias.dims, bias.data))
  const name = ctx.graph.node('Conv', convInputs, layer.name, { ...attributes, dilations: options.dilations, group: groups })
  return applyActivation(ctx, { name, shape: [...outHW, outputs], layout: 'nchw' }, layer.config.activation, layer)
}

/** Depthwise step shared by DepthwiseConv2D and SeparableConv2D: output channel c * multiplier + m. */
function depthwise (ctx: ConversionContext, layer: KerasLayer, x: Value, weights: LayerWeights, withBias: boolean): Value {
  const kernel = weights.get('depthwise_kernel')!
  const [kh, kw, channels, multiplier] = kernel.dims
  if (channels !== x.shape[2]) {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `kernel expects ${channels} input channels, input has ${x.shape[2]}`)
  }
  const options = convOptions(layer, [kh, kw])
  const { outHW, attributes } = spatial(layer, x, options)
  const w = permute(kernel, [2, 3, 0, 1])
  const inputs = [ctx.toNchw(x).name, ctx.floatConstant(`${layer.name}_depthwise_kernel`, [channels * multiplier, 1, kh, kw], w.data)]
  const bias = withBias ? weights.get('bias') : undefined
  if (bias !== undefined) inputs.push(ctx.floatConstant(`${layer.name}_bias`, bias.dims, bias.data))
  const name = ctx.graph.node('Conv', inputs, `${layer.name}_depthwise`, { ...attributes, dilations: options.dilations, group: channels })
  return { name, shape: [...outHW, channels * multiplier], layout: 'nchw' }
}

function depthwiseConv2d (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  requireChannelsLast(layer)
  const x = single(layer, inputs, 3)
  const weights = ctx.weights(layer, variables(layer, 'depthwise_kernel'), { depthwise_kernel: [...kernelSize(layer), undefined, configSize(layer.config.depth_multiplier ?? 1)] })
  return applyActivation(ctx, depthwise(ctx, layer, x, weights, true), layer.config.activation, layer)
}

function separableConv2d (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  requireChannelsLast(layer)
  const x = single(layer, inputs, 3)
  const weights = ctx.weights(layer, variables(layer, 'depthwise_kernel', 'pointwise_kernel'), {
    depthwise_kernel: [...kernelSize(layer), undefined, configSize(layer.config.depth_multiplier ?? 1)],
    pointwise_kernel: [1, 1, undefined, configSize(layer.config.filters)]
  }, { bias: [configSize(layer.config.filters)] })
  const mid = depthwise(ctx, layer, x, weights, false)
  const pointwise = permute(weights.get('pointwise_kernel')!, [3, 2, 0, 1])
  const convInputs = [mid.name, ctx.floatConstant(`${layer.name}_pointwise_kernel`, pointwise.dims, pointwise.data)]
  const bias = weights.get('bias')
  if (bias !== undefined) convInputs.push(ctx.floatConstant(`${layer.name}_bias`, bias.dims, bias.data))
  const name = ctx.graph.node('Conv', convInputs, layer.name, { kernel_shape: [1, 1] })
  return applyActivation(ctx, { name, shape: [...mid.shape.slice(0, 2), pointwise.dims[0]], layout: 'nchw' }, layer.config.activation, layer)
}

function pooling (opType: 'MaxPool' | 'AveragePool'): Converter {
  return (ctx, layer, inputs) => {
    requireChannelsLast(layer)
    const x = single(layer, inputs, 3)
    const kernel = pair(layer.config.pool_size, 2)
    const strides = layer.config.strides == null ? kernel : pair(layer.config.strides, 1)
    // Keras's 'same' average pooling divides by the number of real pixels: count_include_pad stays 0.
    const { outHW, attributes } = spatial(layer, x, { kernel, strides, dilations: [1, 1] })
    const name = ctx.graph.node(opType, [ctx.toNchw(x).name], layer.name, attributes)
    return { name, shape: [...outHW, x.shape[2]], layout: 'nchw' }
  }
}

function globalPooling (opType: 'GlobalAveragePool' | 'GlobalMaxPool'): Converter {
  return (ctx, layer, inputs) => {
    requireChannelsLast(layer)
    const x = single(layer, inputs, 3)
    const pooled = ctx.graph.node(opType, [ctx.toNchw(x).name], layer.name)
    if (layer.config.keepdims === true) return { name: pooled, shape: [1, 1, x.shape[2]], layout: 'nchw' }
    return { name: ctx.graph.node('Flatten', [pooled], `${layer.name}_flat`, { axis: 1 }), shape: [x.shape[2]], layout: 'keras' }
  }
}

function batchNormalization (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  const x = single(layer, inputs)
  const rank = x.shape.length + 1
  const axis = Array.isArray(layer.config.axis) && layer.config.axis.length === 1 ? Number(layer.config.axis[0]) : Number(layer.config.axis ?? -1)
  if ((axis !== -1 && axis !== rank - 1) || (rank !== 2 && rank !== 4)) {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `only the channel axis of a rank-2 or rank-4 tensor is supported (axis ${axis}, rank ${rank})`)
  }
  const order = [...(layer.config.scale === false ? [] : ['gamma']), ...(layer.config.center === false ? [] : ['beta']), 'moving_mean', 'moving_variance']
  const channels = x.shape.at(-1)!
  const weights = ctx.weights(layer, order, { moving_mean: [channels], moving_variance: [channels] }, { gamma: [channels], beta: [channels] })
  const vector = (name: string, fallback: number): string => {
    const weight = weights.get(name)
    return ctx.floatConstant(`${layer.name}_${name}`, [channels], weight?.data ?? new Array<number>(channels).fill(fallback))
  }
  const input = rank === 4 ? ctx.toNchw(x) : x
  const name = ctx.graph.node('BatchNormalization', [input.name, vector('gamma', 1), vector('beta', 0), vector('moving_mean', 0), vector('moving_variance', 1)],
    layer.name, { epsilon: { float: Number(layer.config.epsilon ?? 0.001) } })
  return { ...input, name, activation: undefined }
}

function dense (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  const x = ctx.toKeras(single(layer, inputs))
  const units = configSize(layer.config.units)
  const weights = ctx.weights(layer, variables(layer, 'kernel'), { kernel: [undefined, units] }, { bias: [units] })
  const kernel = weights.get('kernel')!
  if (kernel.dims[0] !== x.shape.at(-1)) {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `kernel expects ${kernel.dims[0]} features, input has ${x.shape.at(-1)}`)
  }
  let name = ctx.graph.node('MatMul', [x.name, ctx.floatConstant(`${layer.name}_kernel`, kernel.dims, kernel.data)], `${layer.name}_matmul`)
  const bias = weights.get('bias')
  if (bias !== undefined) name = ctx.graph.node('Add', [name, ctx.floatConstant(`${layer.name}_bias`, bias.dims, bias.data)], layer.name)
  return applyActivation(ctx, { name, shape: [...x.shape.slice(0, -1), kernel.dims[1]], layout: 'keras' }, layer.config.activation, layer)
}

function flatten (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  requireChannelsLast(layer)
  // Keras flattens in channels-last order, so NCHW tensors go back to NHWC first.
  const x = ctx.toKeras(single(layer, inputs))
  const name = ctx.graph.node('Flatten', [x.name], layer.name, { axis: 1 })
  return { name, shape: [x.shape.reduce((a, b) => a * b, 1)], layout: 'keras', activation: x.activation }
}

function reshape (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  const x = ctx.toKeras(single(layer, inputs))
  const target = Array.isArray(layer.config.target_shape) ? layer.config.target_shape.map(Number) : []
  const total = x.shape.reduce((a, b) => a * b, 1)
  const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1)
  const shape = target.map((d) => (d === -1 ? total / known : d))
  if (target.length === 0 || shape.reduce((a, b) => a * b, 1) !== total || !shape.every(Number.isInteger)) {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `cannot reshape ${x.shape.join('x')} to ${JSON.stringify(layer.config.target_shape)}`)
  }
  const name = ctx.graph.node('Reshape', [x.name, ctx.graph.int64Constant(`${layer.name}_shape`, [-1, ...shape])], layer.name)
  return { name, shape, layout: 'keras', activation: x.activation }
}

function relu (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  const x = single(layer, inputs)
  const maxValue = layer.config.max_value == null ? undefined : Number(layer.config.max_value)
  const slope = Number(layer.config.negative_slope ?? 0)
  const threshold = Number(layer.config.threshold ?? 0)
  let name: string
  if (threshold === 0) {
    name = slope === 0 ? ctx.graph.node('Relu', [x.name], layer.name) : ctx.graph.node('LeakyRelu', [x.name], layer.name, { alpha: { float: slope } })
  } else {
    // Keras: x where x >= threshold, else negative_slope * (x - threshold).
    const t = ctx.floatConstant(`${layer.name}_threshold`, [], [threshold])
    const below = ctx.graph.node('Mul', [ctx.graph.node('Sub', [x.name, t], `${layer.name}_shifted`), ctx.floatConstant(`${layer.name}_slope`, [], [slope])], `${layer.name}_below`)
    name = ctx.graph.node('Where', [ctx.graph.node('GreaterOrEqual', [x.name, t], `${layer.name}_active`), x.name, below], layer.name)
  }
  if (maxValue !== undefined) name = ctx.graph.node('Min', [name, ctx.floatConstant(`${layer.name}_max_value`, [], [maxValue])], `${layer.name}_capped`)
  return { ...x, name, activation: 'relu' }
}

function leakyRelu (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  const x = single(layer, inputs)
  const slope = Number(layer.config.negative_slope ?? layer.config.alpha ?? 0.3)
  return { ...x, name: ctx.graph.node('LeakyRelu', [x.name], layer.name, { alpha: { float: slope } }), activation: 'leaky_relu' }
}

function rescaling (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  let x = single(layer, inputs)
  const operand = (key: string, value: unknown): string => {
    if (Array.isArray(value)) return ctx.floatConstant(`${layer.name}_${key}`, [value.length], value.map(Number))
    return ctx.floatConstant(`${layer.name}_${key}`, [], [Number(value)])
  }
  const { scale = 1, offset = 0 } = layer.config
  // Per-channel factors broadcast along the last axis, which must then be the channel axis.
  if (Array.isArray(scale) || Array.isArray(offset)) x = ctx.toKeras(x)
  const scaled = ctx.graph.node('Mul', [x.name, operand('scale', scale)], `${layer.name}_scaled`)
  const name = ctx.graph.node('Add', [scaled, operand('offset', offset)], layer.name)
  return { ...x, name, activation: undefined }
}

function zeroPadding2d (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  requireChannelsLast(layer)
  const x = single(layer, inputs, 3)
  const padding = layer.config.padding ?? 1
  const [[top, bottom], [left, right]] = Array.isArray(padding) && Array.isArray(padding[0])
    ? [pair(padding[0], 0), pair(padding[1], 0)]
    : (() => { const [rows, cols] = pair(padding, 1); return [[rows, rows], [cols, cols]] })()
  const pads = ctx.graph.int64Constant(`${layer.name}_pads`, [0, 0, top, left, 0, 0, bottom, right])
  const name = ctx.graph.node('Pad', [ctx.toNchw(x).name, pads], layer.name)
  return { name, shape: [x.shape[0] + top + bottom, x.shape[1] + left + right, x.shape[2]], layout: 'nchw' }
}

const passThrough: Converter = (_ctx, layer, inputs) => single(layer, inputs)

export const LAYER_CONVERTERS: Record<string, Converter> = {
  Conv2D: conv2d,
  DepthwiseConv2D: depthwiseConv2d,
  SeparableConv2D: separableConv2d,
  MaxPooling2D: pooling('MaxPool'),
  AveragePooling2D: pooling('AveragePool'),
  GlobalAveragePooling2D: globalPooling('GlobalAveragePool'),
  GlobalMaxPooling2D: globalPooling('GlobalMaxPool'),
  BatchNormalization: batchNormalization,
  Dense: dense,
  Flatten: flatten,
  Reshape: reshape,
  Permute: permuteLayer,
  // Dropout is the identity at inference time.
  Dropout: passThrough,
  Activation: (ctx, layer, inputs) => applyActivation(ctx, single(layer, inputs), layer.config.activation, layer),
  ReLU: relu,
  LeakyReLU: leakyRelu,
  Add: elementwise('Add'),
  Multiply: elementwise('Mul'),
  Concatenate: concatenate,
  Rescaling: rescaling,
  ZeroPadding2D: zeroPadding2d
}
