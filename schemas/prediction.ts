import { Type, type Static } from '@sinclair/typebox'
import { DicomIdentifiersSchema } from './dicom.js'
import { FindingSchema } from './finding.js'
import { ModelRefSchema } from './model.js'
import { refTo } from './ref.js'

export const PredictionSchema = Type.Object({
  id: Type.String({ format: 'uuid', description: 'Names the stored upload.' }),
  prediction: Type.Union([Type.Literal('Normal'), Type.Literal('Stone')]),
  classIndex: Type.Union([Type.Literal(0), Type.Literal(1)], { description: 'Normal = 0, Stone = 1.' }),
  confidence: Type.Number({ minimum: 0, maximum: 1, description: 'Probability of the predicted class.' }),
  probabilities: Type.Object({
    Normal: Type.Number({ minimum: 0, maximum: 1 }),
    Stone: Type.Number({ minimum: 0, maximum: 1 })
  }),
  confidenceBand: Type.Union([Type.Literal('high'), Type.Literal('moderate'), Type.Literal('low')]),
  threshold: Type.Number({ description: 'The model threshold the decision used.' }),
  recommendations: Type.Array(Type.String()),
  model: refTo(ModelRefSchema),
  disclaimer: Type.String(),
  findings: Type.Optional(Type.Array(refTo(FindingSchema), {
    maxItems: 3,
    description: 'Stone: up to 3 regions where the model found its evidence, strongest first (none when no region stands ' +
      'out of the activation map); Normal: empty. Absent only when the model computes no activation map (the shipped ' +
      'model does; a converted Keras model may not).'
  })),
  dicom: Type.Optional(refTo(DicomIdentifiersSchema))
}, { $id: 'Prediction', title: 'Prediction' })

export type Prediction = Static<typeof PredictionSchema>

/**
 * A multipart file field. `isFile` (from @fastify/multipart's ajv plugin) checks that the part is a file and
 * becomes `type: string, format: binary` in OpenAPI. The plugin rewrites the schema object it compiles, so
 * every route registration needs a fresh one: this is a factory, not a constant.
 */
export function fileField (description: string) {
  return Type.Unsafe<unknown>({ isFile: true, description })
}

export function predictBodySchema () {
  return Type.Object({ file: Type.Optional(fileField('One kidney CT slice: a JPEG or PNG image, or a single-frame DICOM file.')) })
}
