import fp from 'fastify-plugin'
import { recordOrigin } from './record-origin.js'

/** Routes whose refusals are not audited: probes and scrapes poll, and their 503s say "not ready", not "refused". */
function audited (route: string | undefined): boolean {
  return route === undefined || !(route.startsWith('/health/') || route === '/metrics')
}

/**
 * An audit event for every refused request (status >= 400): code, status, caller, method, route pattern (never the
 * URL: it may carry anything), request id and time; no bytes, no file names. Written after the answer is sent, so
 * auditing never delays or changes a refusal; a write that fails is counted in kidney_records_lost_total{kind="audit"}.
 */
export default fp(async (app) => {
  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode < 400 || !audited(request.routeOptions.url)) return
    app.records.audit({
      ...recordOrigin(request),
      createdAt: new Date(),
      method: request.method,
      status: reply.statusCode,
      code: reply.errorCode ?? `HTTP_${reply.statusCode}`
    })
  })
}, { name: 'audit', dependencies: ['records', 'errors'] })
