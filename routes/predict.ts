import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { uploadedFileBytes, serverTiming } from '../plugins/app/predictor.js'
import { errorResponses } from '../schemas/error.js'
import { predictBodySchema, PredictionSchema } from '../schemas/prediction.js'
import { refTo } from '../schemas/ref.js'

const predict: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/predict', {
    schema: {
      tags: ['prediction'],
      summary: 'Classify one kidney CT slice (JPEG or PNG)',
      description: 'The file type is detected from its content. Stage timings are in the Server-Timing header.',
      consumes: ['multipart/form-data'],
      body: predictBodySchema(),
      response: { 200: refTo(PredictionSchema), ...errorResponses(400, 413, 415, 422, 503) }
    }
  }, async (request, reply) => {
    const bytes = await uploadedFileBytes(request.body.file)
    const { prediction, timings } = await app.predict(bytes)
    reply.header('Server-Timing', serverTiming(timings))
    return prediction
  })
}

export default predict
