import type { FastifyRequest } from 'fastify'
import type { Caller, RecordOrigin } from '../../records/record.js'

/** Who made a request, as records name it: 'api-key:<name>', 'jwt:<sub>', or 'anonymous' without credentials. */
export function callerOf (request: FastifyRequest): Caller {
  return request.principal === undefined ? 'anonymous' : `${request.principal.kind}:${request.principal.name}`
}

/** Where a request's records come from: its caller, its route pattern and its request id. */
export function recordOrigin (request: FastifyRequest): RecordOrigin {
  return { caller: callerOf(request), route: request.routeOptions.url ?? '(no route)', requestId: request.id }
}
