import { Type, type Static } from '@sinclair/typebox'
import { DicomIdentifiersSchema } from './dicom.js'
import { ModelRefSchema } from './model.js'
import { refTo } from './ref.js'

export const ProbabilitiesSchema = Type.Object({
  Normal: Type.Number({ minimum: 0, maximum: 1 }),
  Stone: Type.Number({ minimum: 0, maximum: 1 })
}, { $id: 'Probabilities', title: 'Probabilities', description: 'Calibrated class probabilities; they sum to 1.' })

export const FramePredictionSchema = Type.Object({
  frame: Type.Integer({ minimum: 1, description: '1-based frame number in the DICOM object.' }),
  slicePosition: Type.Optional(Type.Number({ description: 'Position of the frame along the slice normal, mm (Plane Position (Patient) of its functional groups).' })),
  prediction: Type.Union([Type.Literal('Normal'), Type.Literal('Stone')], { description: 'Stone when P(Stone) >= the model threshold.' }),
  probabilities: refTo(ProbabilitiesSchema)
}, { $id: 'FramePrediction', title: 'FramePrediction', description: 'One frame of a multi-frame DICOM object, classified like a slice.' })

export const PredictionSchema = Type.Object({
  id: Type.String({ format: 'uuid', description: 'Names the stored upload.' }),
  prediction: Type.Union([Type.Literal('Normal'), Type.Literal('Stone')]),
  classIndex: Type.Union([Type.Literal(0), Type.Literal(1)], { description: 'Normal = 0, Stone = 1.' }),
  confidence: Type.Number({ minimum: 0, maximum: 1, description: 'Probability of the predicted class.' }),
  probabilities: refTo(ProbabilitiesSchema),
  confidenceBand: Type.Union([Type.Literal('high'), Type.Literal('moderate'), Type.Literal('low')]),
  threshold: Type.Number({ description: 'The model threshold the decision used.' }),
  recommendations: Type.Array(Type.String()),
  model: refTo(ModelRefSchema),
  disclaimer: Type.String(),
  dicom: Type.Optional(refTo(DicomIdentifiersSchema)),
  frames: Type.Optional(Type.Array(refTo(FramePredictionSchema), {
    description: 'Only for a multi-frame DICOM object (an enhanced CT holds a series in one file): every frame classified, in ' +
      'frame order. The fields above are then those of its most probably Stone frame: Stone when any frame is Stone.'
  }))
}, { $id: 'Prediction', title: 'Prediction', description: 'A single-frame file never has `frames`.' })

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
  return Type.Object({ file: Type.Optional(fileField('One kidney CT slice: a JPEG or PNG image, or a DICOM file (a multi-frame one is classified frame by frame).')) })
}
