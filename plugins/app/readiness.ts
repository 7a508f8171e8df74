import fp from 'fastify-plugin'
import { ModelFailedError, ModelNotReadyError } from '../../inference/errors.js'
import { OverloadedError } from './errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Resolves when the service can answer predictions; rejects with the typed reason (503) when not. */
    checkReady: () => Promise<void>
  }
}

/**
 * The one readiness check, behind GET /health/ready (load balancers, Kubernetes) and the kidney_ready metric
 * (alerts): the model is loaded, warmed up and its runtime still running, answers can be recorded, and the in-flight
 * upload budget can take the largest upload.
 */
export default fp(async (app) => {
  /** Runtime failures already logged with their cause (readiness is probed every few seconds). */
  const logged = new WeakSet<Error>()
  app.decorate('checkReady', async () => {
    const failure = app.model.failure
    if (failure !== undefined) {
      if (failure.cause !== undefined && !logged.has(failure)) {
        logged.add(failure)
        app.log.error({ err: failure.cause }, 'the model runtime stopped')
      }
      throw failure
    }
    // a failed load stops start-up (server.ts), which logs the reason
    if (app.model.state === 'failed') throw new ModelFailedError('the model did not load; see the service log')
    if (app.model.state !== 'ready') throw new ModelNotReadyError()
    await app.records.checkReady()
    // Memory and event-loop pressure already answer 503 on every route (plugins/external/under-pressure.ts).
    if (app.inflight.available < app.config.maxFileBytes) throw new OverloadedError(app.config.pressure.retryAfterS)
  })
  app.metrics.readySource = async () => await app.checkReady().then(() => true, () => false)
}, { name: 'readiness', dependencies: ['config', 'model', 'metrics', 'records', 'inflight'] })
