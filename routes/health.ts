import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../schemas/error.js'
import { HealthSchema } from '../schemas/model.js'
import { refTo } from '../schemas/ref.js'

const health: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health/live', {
    schema: { tags: ['service'], summary: 'Liveness: the process is up', response: { 200: refTo(HealthSchema) } }
  }, async () => ({ status: 'live' }))

  app.get('/health/ready', {
    schema: {
      tags: ['service'],
      summary: 'Readiness: the model is loaded and warmed up, and answers can be recorded',
      description: '503 with the reason when the model is not ready or failed, or when the records store cannot be ' +
        'written (RECORDS_UNAVAILABLE; not with RECORDS_REQUIRED=false).',
      response: { 200: refTo(HealthSchema), ...errorResponses(503) }
    }
  }, async () => {
    await app.checkReady()
    return { status: 'ready' }
  })
}

export default health
