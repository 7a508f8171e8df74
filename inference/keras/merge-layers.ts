import type { ConversionContext, Converter, Value } from './context.js'
import { UnsupportedKerasLayerError } from './errors.js'
import type { KerasLayer } from './model-config.js'

/** Elementwise merges keep NCHW when every branch already is, instead of transposing back and forth. */
function sameLayout (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value[] {
  if (inputs.length < 2) throw new UnsupportedKerasLayerError(layer.name, layer.className, 'a merge layer needs at least 2 inputs')
  return inputs.every((v) => v.layout === inputs[0].layout) ? inputs : inputs.map((v) => ctx.toKeras(v))
}

export function elementwise (opType: 'Add' | 'Mul'): Converter {
  return (ctx, layer, inputs) => {
    const values = sameLayout(ctx, layer, inputs)
    if (values.some((v) => v.shape.join('x') !== values[0].shape.join('x'))) {
      throw new UnsupportedKerasLayerError(layer.name, layer.className, `input shapes differ: ${values.map((v) => v.shape.join('x')).join(', ')}`)
    }
    let name = values[0].name
    values.slice(1).forEach((v, i) => { name = ctx.graph.node(opType, [name, v.name], i === values.length - 2 ? layer.name : `${layer.name}_partial`) })
    return { ...values[0], name, activation: undefined }
  }
}

export function concatenate (ctx: ConversionContext, layer: KerasLayer, inputs: Value[]): Value {
  const rank = inputs[0].shape.length + 1
  const raw = Number(layer.config.axis ?? -1)
  const axis = raw < 0 ? rank + raw : raw
  if (axis < 1 || axis >= rank || inputs.some((v) => v.shape.length !== rank - 1)) {
    throw new UnsupportedKerasLayerError(layer.name, layer.className, `cannot concatenate on axis ${raw}`)
  }
  const values = rank === 4 ? inputs.map((v) => ctx.toNchw(v)) : inputs.map((v) => ctx.toKeras(v))
  const onnxAxis = rank === 4 ? [0, 2, 3, 1][axis] : axis
  const shape = [...values[0].shape]
  shape[axis - 1] = values.reduce((sum, v) => sum + v.shape[axis - 1], 0)
  const name = ctx.graph.node('Concat', values.map((v) => v.name), layer.name, { axis: onnxAxis })
  return { name, shape, layout: values[0].layout }
}
