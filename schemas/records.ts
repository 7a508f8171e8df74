import { Type, type Static } from '@sinclair/typebox'
import { onlyParameters } from './query.js'
import { PredictionSchema } from './prediction.js'
import { refTo } from './ref.js'

/** Who may read records and audit events: the description every records route carries. */
export const RECORDS_ACCESS = 'With authentication on, a caller reads only its own records unless its credentials carry the ' +
  '`records:read-all` scope (RECORDS_READ_ALL_SCOPE); without authentication this API follows RECORDS_API ' +
  '(on by default only when the service listens on a loopback address).'

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
  // A pattern besides the format: the format also admits a `urn:uuid:` prefix, which the database's uuid type does not.
  id: Type.String({ format: 'uuid', pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$', description: 'The `id` of a /predict answer (or of one batch result).' })
})

export const DEFAULT_PAGE_SIZE = 50

const PredictionQueryProperties = {
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Only answers given at or after this time (ISO 8601 with a time zone).' })),
  until: Type.Optional(Type.String({ format: 'date-time', description: 'Only answers given before this time; one before `since` is 400 VALIDATION_ERROR.' })),
  prediction: Type.Optional(Type.Union([Type.Literal('Normal'), Type.Literal('Stone')])),
  studyInstanceUid: Type.Optional(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description: 'Only the instances of this DICOM study.' })),
  // Optional with a default: callers may leave it out (Ajv fills it in; the routes fall back to it for the type checker).
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: DEFAULT_PAGE_SIZE, description: 'Page size.' })),
  cursor: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]+$', maxLength: 256, description: 'The `next` of the previous page.' }))
}
export const PredictionQuerySchema = onlyParameters(PredictionQueryProperties)

export const AuditEventSchema = Type.Object({
  createdAt: Type.String({ format: 'date-time', description: 'When the request was refused (UTC).' }),
  caller: Type.String({ description: 'Who asked, as in StoredPrediction.caller.' }),
  method: Type.String(),
  route: Type.String({ description: 'The route pattern (e.g. `/predictions/:id`), `(no route)` for unknown paths; never the URL itself.' }),
  status: Type.Integer({ description: 'The HTTP status of the refusal.' }),
  code: Type.String({ description: 'The error code of the refusal (docs/api.md lists them).' }),
  requestId: Type.Optional(Type.String({ description: 'The request id (`x-request-id`) of the refused request.' })),
  fileIndex: Type.Optional(Type.Integer({ minimum: 0, description: 'For a file refused inside a batch: its position in the request.' }))
}, {
  $id: 'AuditEvent',
  title: 'AuditEvent',
  description: 'A refused request, or a refused file of a batch: no bytes, no file names, no URLs.'
})

export const AuditEventPageSchema = Type.Object({
  items: Type.Array(refTo(AuditEventSchema), { description: 'Newest first.' }),
  next: Type.Optional(Type.String({ description: 'Present when there may be more: send it back as `cursor` for the next page.' }))
}, { $id: 'AuditEventPage', title: 'AuditEventPage' })

export const AuditQuerySchema = onlyParameters({
  since: PredictionQueryProperties.since,
  until: PredictionQueryProperties.until,
  code: Type.Optional(Type.String({ pattern: '^[A-Z][A-Z0-9_]*$', maxLength: 64, description: 'Only refusals with this error code.' })),
  limit: PredictionQueryProperties.limit,
  cursor: PredictionQueryProperties.cursor
})
