import { Type, type Static } from '@sinclair/typebox'
import { PredictionSchema } from './prediction.js'
import { refTo } from './ref.js'

export const StoredPredictionSchema = Type.Object({
  ...PredictionSchema.properties,
  createdAt: Type.String({ format: 'date-time', description: 'When the answer was given (UTC).' }),
  caller: Type.String({ description: 'Who asked: `anonymous` (no authentication), `api-key:<name>` or `jwt:<sub>`.' })
}, {
  $id: 'StoredPrediction',
  title: 'StoredPrediction',
  description: 'A recorded answer: the /predict answer exactly as it was sent, plus when and for whom.'
})

export type StoredPredictionReply = Static<typeof StoredPredictionSchema>

export const PredictionPageSchema = Type.Object({
  items: Type.Array(refTo(StoredPredictionSchema), { description: 'Newest first; records with the same time in a stable order.' }),
  next: Type.Optional(Type.String({ description: 'Present when there may be more: send it back as `cursor` for the next page.' }))
}, { $id: 'PredictionPage', title: 'PredictionPage' })

export const PredictionIdParamsSchema = Type.Object({
  id: Type.String({ format: 'uuid', description: 'The `id` of a /predict answer (or of one batch result).' })
})

export const PredictionQuerySchema = Type.Object({
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Only answers given at or after this time (ISO 8601 with a time zone).' })),
  until: Type.Optional(Type.String({ format: 'date-time', description: 'Only answers given before this time.' })),
  prediction: Type.Optional(Type.Union([Type.Literal('Normal'), Type.Literal('Stone')])),
  studyInstanceUid: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description: 'Only the instances of this DICOM study.' })),
  limit: Type.Integer({ minimum: 1, maximum: 200, default: 50, description: 'Page size.' }),
  cursor: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]+$', maxLength: 256, description: 'The `next` of the previous page.' }))
})
