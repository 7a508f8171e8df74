import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { PredictionNotFoundError } from '../records/errors.js'
import { errorResponses } from '../schemas/error.js'
import { PredictionIdParamsSchema, PredictionPageSchema, PredictionQuerySchema, StoredPredictionSchema } from '../schemas/records.js'
import { refTo } from '../schemas/ref.js'

const ACCESS = 'With authentication on, a caller reads only its own records unless its credentials carry the ' +
  '`records:read-all` scope (RECORDS_READ_ALL_SCOPE); without authentication this API follows RECORDS_API ' +
  '(on by default only when the service listens on a loopback address).'

const predictions: FastifyPluginAsyncTypebox = async (app) => {
  const authOn = app.config.auth.mode !== 'none'

  app.get('/predictions/:id', {
    schema: {
      tags: ['records'],
      summary: 'One recorded answer, exactly as /predict returned it, with its time and caller',
      description: ACCESS,
      params: PredictionIdParamsSchema,
      response: { 200: refTo(StoredPredictionSchema), ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request) => {
    const caller = app.records.readerScope(request, authOn)
    const stored = await app.records.getPrediction(request.params.id, caller)
    if (stored === undefined) throw new PredictionNotFoundError(request.params.id)
    return { ...stored.answer, createdAt: stored.createdAt, caller: stored.caller }
  })

  app.get('/predictions', {
    schema: {
      tags: ['records'],
      summary: 'Recorded answers, newest first, filtered and paged by cursor',
      description: `${ACCESS} Follow \`next\` until it is absent.`,
      querystring: PredictionQuerySchema,
      response: { 200: refTo(PredictionPageSchema), ...errorResponses(400, 401, 403, 503) }
    }
  }, async (request) => {
    const caller = app.records.readerScope(request, authOn)
    const { since, until, prediction, studyInstanceUid, limit, cursor } = request.query
    const page = await app.records.listPredictions({
      caller,
      since: since === undefined ? undefined : new Date(since),
      until: until === undefined ? undefined : new Date(until),
      prediction,
      studyInstanceUid,
      limit,
      cursor
    })
    return {
      items: page.items.map((stored) => ({ ...stored.answer, createdAt: stored.createdAt, caller: stored.caller })),
      ...(page.next === undefined ? {} : { next: page.next })
    }
  })
}

export default predictions
