import { ConversionContext, type Value } from './context.js'
import { KerasFileError, UnsupportedKerasLayerError } from './errors.js'
import { openKerasFile } from './keras-file.js'
import { LAYER_CONVERTERS } from './layers.js'
import { readModelGraph, type KerasGraph, type TensorRef } from './model-config.js'
import { OnnxGraph } from './onnx-graph.js'

/** What the Keras file itself says about the model; class names and input scaling it does not record. */
export interface KerasModelFacts {
  format: 'h5' | 'keras'
  kerasVersion: string
  modelClass: KerasGraph['kind']
  sourceSha256: string
  input: { height: number, width: number, channels: number, layout: 'NHWC' }
  /** Every ONNX output in model order, with its shape without the batch axis. */
  outputs: Array<{ name: string, shape: number[] }>
  /** Size of the first output, the one the service reads (further outputs, e.g. activation maps, are extras). */
  outputSize: number
  /** Activation of the first output layer: softmax/sigmoid mean the model outputs probabilities. */
  outputActivation: string
}

export interface KerasConversion {
  onnx: Uint8Array
  facts: KerasModelFacts
  /** One line per layer: name, class, output shape, weight count. */
  summary: string[]
}

export const ONNX_INPUT_NAME = 'input'
/** The output name of single-output models; several outputs are named after their Keras output layers. */
export const ONNX_OUTPUT_NAME = 'output'

const refKey = (ref: TensorRef): string => `${ref.layer}:${ref.node}:${ref.tensor}`

/**
 * Converts a Keras `.h5` / `.keras` model to ONNX (opset 13) with an NHWC float input, like Keras's own; a `.keras`
 * archive's weights are unpacked under `workDir` meanwhile (openKerasFile).
 */
export async function convertKerasModel (path: string, workDir?: string): Promise<KerasConversion> {
  const file = await openKerasFile(path, workDir)
  try {
    const graph = readModelGraph(file.modelConfig)
    const kerasMajor = Number.parseInt(file.kerasVersion, 10) || (file.format === 'keras' ? 3 : 2)
    const onnx = new OnnxGraph()
    const weightCounts = new Map<string, number>()
    const ctx = new ConversionContext(onnx, kerasMajor, (layer, variableOrder) => {
      const weights = file.layerWeights({ name: layer.name, className: layer.className, variableOrder })
      weightCounts.set(layer.name, [...weights.values()].reduce((sum, w) => sum + w.data.length, 0))
      return weights
    })

    const [, height, width, channels] = graph.input.shape as number[]
    const values = new Map<string, Value>()
    values.set(refKey({ layer: graph.input.name, node: 0, tensor: 0 }), { name: onnx.name(ONNX_INPUT_NAME), shape: [height, width, channels], layout: 'keras' })
    // Taken first, so that no layer tensor gets a graph output's name.
    const outputNames = graph.outputs.length === 1 ? [onnx.name(ONNX_OUTPUT_NAME)] : graph.outputs.map((ref) => onnx.name(ref.layer))
    const summary = [`${graph.input.name} (InputLayer) -> ${height}x${width}x${channels}`]

    // Keras configs list layers in dependency order, but a Functional model may call a layer again later.
    let pending = graph.layers.flatMap((layer) => layer.calls.map((inputs, node) => ({ layer, node, inputs })))
    while (pending.length > 0) {
      const ready = pending.filter((call) => call.inputs.every((ref) => values.has(refKey(ref))))
      if (ready.length === 0) {
        const stuck = pending[0]
        throw new KerasFileError(`model config: layer "${stuck.layer.name}" depends on a tensor no layer produces (${stuck.inputs.map(refKey).join(', ')})`)
      }
      for (const { layer, node, inputs } of ready) {
        // Converting at service start-up must not stall the event loop (liveness, load shedding) for long.
        await new Promise((resolve) => setImmediate(resolve))
        const convert = LAYER_CONVERTERS[layer.className]
        if (convert === undefined) throw new UnsupportedKerasLayerError(layer.name, layer.className)
        const output = convert(ctx, layer, inputs.map((ref) => values.get(refKey(ref))!))
        values.set(refKey({ layer: layer.name, node, tensor: 0 }), output)
        summary.push(`${layer.name} (${layer.className}) -> ${output.shape.join('x')}, ${weightCounts.get(layer.name) ?? 0} weights`)
      }
      pending = pending.filter((call) => !ready.includes(call))
    }

    const results = graph.outputs.map((ref) => {
      const value = values.get(refKey(ref))
      if (value === undefined) throw new KerasFileError(`model config: output layer "${ref.layer}" was never computed`)
      return ctx.toKeras(value)
    })
    const outputs = results.map((result, i) => ({ name: onnx.identity(result.name, outputNames[i]), shape: result.shape }))
    const encoded = onnx.encode(
      { name: ONNX_INPUT_NAME, dims: [null, height, width, channels] },
      outputs.map((output) => ({ name: output.name, dims: [null, ...output.shape] })),
      `Converted from Keras ${file.kerasVersion} ${graph.kind} model, source sha256 ${file.sha256}`
    )
    const [first] = results
    return {
      onnx: encoded,
      facts: {
        format: file.format,
        kerasVersion: file.kerasVersion,
        modelClass: graph.kind,
        sourceSha256: file.sha256,
        input: { height, width, channels, layout: 'NHWC' },
        outputs,
        outputSize: first.shape.reduce((a, b) => a * b, 1),
        outputActivation: first.activation ?? 'linear'
      },
      summary
    }
  } finally {
    await file.close()
  }
}
