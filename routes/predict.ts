import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { toDiagnosticReport } from '../inference/fhir.js'
import { acceptOnly, wantsFhir } from '../plugins/app/accept.js'
import { requestPredictOptions, uploadedFileBytes, serverTiming } from '../plugins/app/predictor.js'
import { unlessAnswered } from '../plugins/app/deadline.js'
import { recordOrigin } from '../plugins/app/record-origin.js'
import { errorResponses } from '../schemas/error.js'
import { FhirDiagnosticReportSchema, JSON_OR_FHIR } from '../schemas/fhir.js'
import { predictBodySchema, PredictionSchema } from '../schemas/prediction.js'
import { refTo } from '../schemas/ref.js'
import { onlyParameters } from '../schemas/query.js'

const predict: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/predict', {
    // An Accept this route cannot answer (e.g. application/fhir+xml) is refused before the upload is classified.
    onRequest: acceptOnly(JSON_OR_FHIR),
    schema: {
      tags: ['prediction'],
      summary: 'Classify one kidney CT slice (JPEG, PNG or DICOM)',
      description: 'The file type is detected from its content. Stage timings are in the Server-Timing header. ' +
        'With `Accept: application/fhir+json` the answer is a FHIR R4 DiagnosticReport instead (effectiveDateTime: the image ' +
        'acquisition time of a DICOM upload, issued: the processing time); any other Accept is 406 NOT_ACCEPTABLE. Every answer is recorded ' +
        'before it is sent (`GET /predictions/{id}` returns it); when it cannot be recorded the answer is 503 RECORDS_UNAVAILABLE.',
      // no query parameter: one a caller meant as a setting (?threshold=0.1) is refused, not ignored
      querystring: onlyParameters({}),
      consumes: ['multipart/form-data'],
      body: predictBodySchema(),
      response: {
        200: {
          description: 'The prediction, as JSON or as a FHIR R4 DiagnosticReport (chosen by the Accept header).',
          content: {
            'application/json': { schema: refTo(PredictionSchema) },
            'application/fhir+json': { schema: refTo(FhirDiagnosticReportSchema) }
          }
        },
        ...errorResponses(400, 406, 413, 415, 422, 503)
      }
    }
  }, async (request, reply) => await unlessAnswered(reply, async () => {
    const bytes = uploadedFileBytes(request.body)
    const { prediction, timings, acquired } = await app.predict(bytes, recordOrigin(request), requestPredictOptions(request, reply))
    const issued = new Date()
    reply.header('Server-Timing', serverTiming(timings))
    if (wantsFhir(request.headers.accept)) {
      const { spec, modelSha256 } = app.model.get()
      const report = toDiagnosticReport({
        ...prediction, id: prediction.id, positiveClass: spec.positiveClass, identifiers: prediction.dicom,
        model: { ...prediction.model, sha256: modelSha256 }, issued, ...(acquired === undefined ? {} : { effective: acquired })
      })
      return await reply.type('application/fhir+json; charset=utf-8').send(report)
    }
    return prediction
  }))
}

export default predict
