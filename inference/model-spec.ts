import { readFile } from 'node:fs/promises'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

/**
 * The JSON sidecar that sits next to every ONNX model (`<model>.json`). It is the only place where facts
 * about a model live: the service, the CLI, evaluation and the benchmark read it and hard-code nothing.
 */
export const ModelSpecSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  version: Type.String({ minLength: 1 }),
  classes: Type.Array(Type.String({ minLength: 1 }), {
    minItems: 2,
    description: 'Class names in output index order; the service contract needs "Normal" and "Stone".'
  }),
  positiveClass: Type.String({ default: 'Stone' }),
  input: Type.Object({
    width: Type.Integer({ minimum: 1 }),
    height: Type.Integer({ minimum: 1 }),
    channels: Type.Union([Type.Literal(1), Type.Literal(3)]),
    layout: Type.Union([Type.Literal('NCHW'), Type.Literal('NHWC')]),
    resize: Type.Union([Type.Literal('contain'), Type.Literal('fill')], {
      description: 'contain: keep aspect ratio and pad with black; fill: stretch to the input size.'
    }),
    scale: Type.Number({ description: 'value = (pixel * scale - mean[c]) / std[c], pixel in 0..255' }),
    mean: Type.Array(Type.Number()),
    std: Type.Array(Type.Number({ exclusiveMinimum: 0 })),
    window: Type.Optional(Type.Object({
      center: Type.Number(),
      width: Type.Number({ minimum: 1 })
    }, {
      description: 'The display window (HU) of the training slices: DICOM input is windowed with it, whatever VOI the file ' +
        'carries. Absent: abdomen, centre 40, width 400 (docs/hospital.md "How DICOM pixels become model input").'
    }))
  }),
  output: Type.Object({
    kind: Type.Union([Type.Literal('logits'), Type.Literal('probabilities')], {
      description:
        'logits: softmax(logits / temperature); probabilities: used as given, a single value being P(positiveClass).'
    })
  }),
  temperature: Type.Number({ exclusiveMinimum: 0, default: 1 }),
  threshold: Type.Number({
    minimum: 0,
    maximum: 1,
    description: 'P(positiveClass) at or above which the prediction is the positive class.'
  }),
  trainingDataHash: Type.Optional(Type.String()),
  source: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  metrics: Type.Optional(Type.Record(Type.String(), Type.Number()))
})

export type ModelSpec = Static<typeof ModelSpecSchema>

/** Reads and validates `<model>.json`; throws an Error naming the file and the first bad field. */
export async function readModelSpec (sidecarPath: string): Promise<ModelSpec> {
  const raw: unknown = JSON.parse(await readFile(sidecarPath, 'utf8'))
  const spec = Value.Default(ModelSpecSchema, raw)
  const firstError = Value.Errors(ModelSpecSchema, spec).First()
  if (firstError !== undefined) {
    throw new Error(`model sidecar ${sidecarPath}: ${firstError.path || '/'} ${firstError.message}`)
  }
  const { channels, mean, std } = (spec as ModelSpec).input
  if (mean.length !== channels || std.length !== channels) {
    throw new Error(`model sidecar ${sidecarPath}: input.mean and input.std need ${channels} value(s)`)
  }
  return spec as ModelSpec
}

export function sidecarPathFor (modelPath: string): string {
  return modelPath.replace(/\.(onnx|h5|keras)$/i, '') + '.json'
}
