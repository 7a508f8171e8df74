import type { ConversionContext, Value } from './context.js'
import { UnsupportedKerasLayerError } from './errors.js'
import type { KerasLayer } from './model-config.js'

/** Where each Keras axis (batch first, channels last) sits in an NCHW tensor. */
const NCHW_POSITION_OF_KERAS_AXIS = [0, 2, 3, 1]

/**
 * Keras Permute: `dims` reorders the axes after the batch, counted from 1. An NCHW image tensor is permuted
 * from where it is, so Permute((3, 1, 2)) after a convolution (channels first, as class activation maps are
 * usually given) costs no transpose at all.
 */
export function permuteLayer (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  if (inputs.length !== 1) throw new UnsupportedKerasLayerError(layer.name, layer.className, `expected 1 input, got ${inputs.length}`)
  const [x] = inputs
  const dims = Array.isArray(layer.config.dims) ? layer.config.dims.map(Number) : []
  const axes = x.shape.map((_, i) => i + 1)
  if (dims.length !== axes.length || !axes.every((axis) => dims.includes(axis))) {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `dims ${JSON.stringify(layer.config.dims)} is not a permutation of the axes 1..${axes.length}`)
  }
  const kerasPerm = [0, ...dims]
  const perm = x.layout === 'nchw' ? kerasPerm.map((axis) => NCHW_POSITION_OF_KERAS_AXIS[axis]) : kerasPerm
  const shape = dims.map((axis) => x.shape[axis - 1])
  if (perm.every((axis, i) => axis === i)) return { ...x, shape, layout: 'keras' }
  return { name: ctx.graph.node('Transpose', [x.name], layer.name, { perm }), shape, layout: 'keras', activation: x.activation }
}
