import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ModelFailedError, ModelNotReadyError } from '../inference/errors.js'
import { OverloadedError } from '../plugins/app/errors.js'
import { errorResponses } from '../schemas/error.js'
import { HealthSchema } from '../schemas/model.js'
import { refTo } from '../schemas/ref.js'

const health: FastifyPluginAsyncTypebox = async (app) => {
  /** Runtime failures already logged with their cause (readiness is probed every few seconds). */
  const logged = new WeakSet<Error>()

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
      summary: 'Readiness: the model is loaded, has run one warm-up inference, and the instance is not overloaded',
      response: { 200: refTo(HealthSchema), ...errorResponses(503) }
    }
  }, async (request) => {
    const failure = app.model.failure
    if (failure !== undefined) {
      if (failure.cause !== undefined && !logged.has(failure)) {
        logged.add(failure)
        request.log.error({ err: failure.cause }, 'the model runtime stopped')
      }
      throw failure
    }
    // a failed load stops start-up (server.ts), which logs the reason
    if (app.model.state === 'failed') throw new ModelFailedError('the model did not load; see the service log')
    if (app.model.state !== 'ready') throw new ModelNotReadyError()
    // Memory and event-loop pressure already answer 503 here (plugins/external/under-pressure.ts); the in-flight
    // budget is full once the largest upload would not fit.
    if (app.inflight.available < app.config.maxFileBytes) throw new OverloadedError(app.config.pressure.retryAfterS)
    return { status: 'ready' }
  })
}

export default health
