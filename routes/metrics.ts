import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

const metrics: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/metrics', {
    schema: {
      // Operational scrape endpoint for Prometheus, documented in docs/operations.md rather than in the API contract.
      hide: true,
      tags: ['service'],
      summary: 'Prometheus metrics: requests, batch sizes, queue waits, stage timings, process',
      produces: ['text/plain'],
      response: { 200: Type.String({ description: 'Prometheus text exposition format.' }) }
    }
  }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType)
    return await app.metrics.registry.metrics()
  })
}

export default metrics
