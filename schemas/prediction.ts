import { Type, type Static } from '@sinclair/typebox'
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
  disclaimer: Type.String()
}, { $id: 'Prediction', title: 'Prediction' })

export type Prediction = Static<typeof PredictionSchema>

/** Documents the multipart body; `isFile` (from @fastify/multipart's ajv plugin) becomes a binary string. */
export const PredictBodySchema = Type.Object({
  file: Type.Optional(Type.Unsafe<unknown>({ isFile: true, description: 'One JPEG or PNG image of a kidney CT slice.' }))
})
