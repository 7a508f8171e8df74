import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { NoBatchFileError } from '../inference/errors.js'
import { acceptOnly } from '../plugins/app/accept.js'
import { uploadedBatchFiles } from '../plugins/app/batch-predictor.js'
import { requestPredictOptions } from '../plugins/app/predictor.js'
import { unlessAnswered } from '../plugins/app/deadline.js'
import { recordOrigin } from '../plugins/app/record-origin.js'
import { batchBodySchema, BatchResponseSchema } from '../schemas/batch.js'
import { errorResponses } from '../schemas/error.js'
import { refTo } from '../schemas/ref.js'
import { onlyParameters } from '../schemas/query.js'

const predictBatch: FastifyPluginAsyncTypebox = async (app) => {
  const maxFiles = app.config.batchMaxFiles
  app.post('/predict/batch', {
    // This route alone may carry several files; the multipart limits of every other route stay as they are.
    config: { multipartOptions: { limits: { files: maxFiles, parts: maxFiles + app.config.maxFields } } },
    // JSON only: a script asking for FHIR (which /predict gives) is told so before its files are read.
    onRequest: acceptOnly(['application/json']),
    // One part of a repeated field arrives as an object, not an array of one: a batch of one file is a batch too.
    // No body at all would fail the schema as /predict's "no file"; this route names its own field.
    preValidation: async (request) => {
      const body = request.body as { files?: unknown } | undefined
      if (body == null) throw new NoBatchFileError()
      if (body.files !== undefined && !Array.isArray(body.files)) body.files = [body.files]
    },
    schema: {
      tags: ['prediction'],
      summary: 'Classify several CT slices (JPEG, PNG, DICOM) in one request',
      description: 'Repeat the multipart field "files". Each file gets its own result or its own typed error, in ' +
        'request order; the summary counts the classes and concludes per DICOM series by the series rule of GET /studies ' +
        '(Stone when at least SERIES_MIN_ADJACENT_SLICES adjacent slices are positive). ' +
        'The answer is JSON only: an Accept without application/json (e.g. application/fhir+json) is 406 NOT_ACCEPTABLE.',
      // no query parameter: one a caller meant as a setting (?threshold=0.1) is refused, not ignored
      querystring: onlyParameters({}),
      consumes: ['multipart/form-data'],
      body: batchBodySchema(maxFiles),
      response: { 200: refTo(BatchResponseSchema), ...errorResponses(400, 406, 413, 415, 503) }
    }
  }, async (request, reply) => await unlessAnswered(reply, async () => {
    return await app.predictBatch(uploadedBatchFiles(request.body), recordOrigin(request), requestPredictOptions(request, reply))
  }))
}

export default predictBatch
