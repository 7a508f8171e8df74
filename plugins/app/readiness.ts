import fp from 'fastify-plugin'
import { ModelFailedError, ModelNotReadyError } from '../../inference/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Resolves when the service can answer predictions; rejects with the typed reason (503) when not. */
    checkReady: () => Promise<void>
  }
}

/**
 * The one readiness check, behind GET /health/ready (load balancers, Kubernetes) and the kidney_ready metric
 * (alerts): the model is loaded, warmed up and its runtime still running, and answers can be recorded.
 */
export default fp(async (app) => {
  app.decorate('checkReady', async () => {
    if (app.model.failure !== undefined) throw app.model.failure
    // a failed load stops start-up (server.ts), which logs the reason
    if (app.model.state === 'failed') throw new ModelFailedError('the model did not load; see the service log')
    if (app.model.state !== 'ready') throw new ModelNotReadyError()
    await app.records.checkReady()
  })
  app.metrics.readySource = async () => await app.checkReady().then(() => true, () => false)
}, { name: 'readiness', dependencies: ['model', 'metrics', 'records'] })
