import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import { OverloadedError } from '../app/errors.js'

/**
 * Sheds load before it piles up: while the event loop lags or memory is above its limit, new requests get
 * 503 OVERLOADED with Retry-After instead of queueing. Liveness still answers, so an orchestrator does not
 * restart a process that is merely busy.
 */
export default fp(async (app) => {
  const limits = app.config.pressure
  await app.register(underPressure, {
    maxEventLoopDelay: limits.maxEventLoopDelayMs,
    maxEventLoopUtilization: limits.maxEventLoopUtilization,
    maxHeapUsedBytes: limits.maxHeapUsedBytes,
    maxRssBytes: limits.maxRssBytes,
    pressureHandler: async (request, _reply, type, value) => {
      if (request.routeOptions.url === '/health/live') return
      request.log.warn({ pressure: type, value }, 'request shed under pressure')
      throw new OverloadedError(limits.retryAfterS)
    }
  })
}, { name: 'under-pressure', dependencies: ['config', 'errors'] })
