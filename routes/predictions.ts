import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { diagnosticReportOf } from '../inference/fhir.js'
import { acceptOnly, wantsFhir } from '../plugins/app/accept.js'
import { PredictionNotFoundError } from '../records/errors.js'
import { timeRange } from '../records/page.js'
import { errorResponses } from '../schemas/error.js'
import { JSON_OR_FHIR, jsonOrFhirResponse } from '../schemas/fhir.js'
import type { Prediction } from '../schemas/prediction.js'
import { DEFAULT_PAGE_SIZE, PredictionIdParamsSchema, PredictionPageSchema, PredictionQuerySchema, RECORDS_ACCESS, StoredPredictionSchema } from '../schemas/records.js'
import { refTo } from '../schemas/ref.js'

const predictions: FastifyPluginAsyncTypebox = async (app) => {
  const authOn = app.config.auth.mode !== 'none'

  app.get('/predictions/:id', {
    // An Accept naming neither form (application/fhir+xml, text/html) is refused, as /predict refuses it.
    onRequest: acceptOnly(JSON_OR_FHIR),
    schema: {
      tags: ['records'],
      summary: 'One recorded answer, exactly as /predict returned it, with its time and caller',
      description: `${RECORDS_ACCESS} With \`Accept: application/fhir+json\` (preferred by its q) the answer is its FHIR R4 DiagnosticReport, issued at the time it was given; an Accept naming neither JSON type is 406 NOT_ACCEPTABLE.`,
      params: PredictionIdParamsSchema,
      response: {
        200: jsonOrFhirResponse(refTo(StoredPredictionSchema), 'The recorded answer, as JSON or as a FHIR R4 DiagnosticReport (chosen by the Accept header).'),
        ...errorResponses(400, 401, 403, 404, 406, 503)
      }
    }
  }, async (request, reply) => {
    const caller = app.records.readerScope(request, authOn)
    if (wantsFhir(request.headers.accept)) {
      const record = await app.records.getPredictionRecord(request.params.id, caller)
      if (record === undefined) throw new PredictionNotFoundError(request.params.id)
      const report = diagnosticReportOf(record.answer as Prediction, { positiveClass: app.model.get().spec.positiveClass, sha256: record.model.sha256, issued: record.createdAt })
      return await reply.type('application/fhir+json; charset=utf-8').send(report)
    }
    const stored = await app.records.getPrediction(request.params.id, caller)
    if (stored === undefined) throw new PredictionNotFoundError(request.params.id)
    return { ...stored.answer, createdAt: stored.createdAt, caller: stored.caller }
  })

  app.get('/predictions', {
    onRequest: acceptOnly(['application/json']),
    schema: {
      tags: ['records'],
      summary: 'Recorded answers, newest first, filtered and paged by cursor',
      description: `${RECORDS_ACCESS} Follow \`next\` until it is absent. JSON only: an Accept without application/json is 406 NOT_ACCEPTABLE.`,
      querystring: PredictionQuerySchema,
      response: { 200: refTo(PredictionPageSchema), ...errorResponses(400, 401, 403, 406, 503) }
    }
  }, async (request) => {
    const caller = app.records.readerScope(request, authOn)
    const { since, until, prediction, studyInstanceUid, limit, cursor } = request.query
    const page = await app.records.listPredictions({
      caller,
      ...timeRange({ since, until }),
      prediction,
      studyInstanceUid,
      limit: limit ?? DEFAULT_PAGE_SIZE,
      cursor
    })
    return {
      items: page.items.map((stored) => ({ ...stored.answer, createdAt: stored.createdAt, caller: stored.caller })),
      ...(page.next === undefined ? {} : { next: page.next })
    }
  })
}

export default predictions
