import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../schemas/error.js'
import { HealthSchema } from '../schemas/model.js'
import { refTo } from '../schemas/ref.js'

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health/live', {
    schema: {
      tags: ['service'],
      summary: 'Liveness: the process is up and can recover; 503 NOT_LIVE when it should be restarted',
      response: { 200: refTo(HealthSchema), ...errorResponses(503) }
    }
  }, async () => {
    const failure = app.liveness.failure()
    if (failure !== undefined) throw failure
    return { status: 'live' }
  })

  app.get('/health/ready', {
    schema: {
      tags: ['service'],
      summary: 'Readiness: the model is loaded and warmed up, answers can be recorded, and the instance is not overloaded',
      description: '503 with the reason when the model is not ready or failed, when the records store cannot be ' +
        'written (RECORDS_UNAVAILABLE; not with RECORDS_REQUIRED=false), or when the in-flight upload budget is full.',
      response: { 200: refTo(HealthSchema), ...errorResponses(503) }
    }
  }, async () => {
    await app.checkReady()
    return { status: 'ready' }
  })
}

export default health
