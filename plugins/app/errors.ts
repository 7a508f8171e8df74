import { STATUS_CODES, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { FileTooLargeError, NoFileError, ServiceError, UnsupportedMediaTypeError } from '../../inference/errors.js'

export interface ErrorBody {
  statusCode: number
  code: string
  error: string
  message: string
}

export class AuthenticationError extends ServiceError {
  constructor (message = 'Authentication required: send a valid API key or bearer token.') {
    super('UNAUTHORIZED', 401, message)
  }
}

export class ForbiddenError extends ServiceError {
  constructor (scope: string) {
    super('FORBIDDEN', 403, `The credentials are valid but lack the "${scope}" scope.`)
  }
}

export class RateLimitedError extends ServiceError {
  constructor (retryIn: string) {
    super('RATE_LIMITED', 429, `Too many requests from this client; retry in ${retryIn}.`)
  }
}

/** Raised by @fastify/under-pressure (which sets Retry-After before it throws). */
export class OverloadedError extends ServiceError {
  constructor () {
    super('OVERLOADED', 503, 'The service is overloaded; retry after the delay given in Retry-After.')
  }
}

export class RequestTimeoutError extends ServiceError {
  constructor (message = 'The request did not arrive completely in time.') {
    super('REQUEST_TIMEOUT', 408, message)
  }
}

/** An unexpected failure: the caller learns only that it was logged, never what or where. */
export class InternalError extends ServiceError {
  constructor () {
    super('INTERNAL_ERROR', 500, 'An unexpected error occurred; it has been logged.')
  }
}

export class ShuttingDownError extends ServiceError {
  constructor () {
    super('SHUTTING_DOWN', 503, 'The service is shutting down; retry on another instance or shortly.')
  }
}

/** @fastify/busboy reports a broken multipart body with plain Errors; these are their messages. */
const MALFORMED_MULTIPART = /^(Multipart: Boundary not found|Unexpected end of multipart data|Unsupported Content-Type\.|.* terminated early due to unexpected end of multipart data)$/

/** Errors raised by Fastify and its plugins, given the service's stable codes and our own wording. */
function fromFrameworkError (error: FastifyError, request: FastifyRequest, maxFileBytes: number): ServiceError | undefined {
  switch (error.code) {
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new FileTooLargeError(maxFileBytes)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new UnsupportedMediaTypeError('Send the image as multipart/form-data in the field "file".')
    case 'FST_FILES_LIMIT':
      return new ServiceError('TOO_MANY_FILES', 400, 'Too many files in one request.')
    case 'FST_UNDER_PRESSURE':
      return new OverloadedError()
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ServiceError('TOO_MANY_PARTS', 400, 'Too many form fields in one request.')
  }
  if (error.code === 'FST_INVALID_JSON_FIELD_ERROR') return new ServiceError('VALIDATION_ERROR', 400, 'A form field declared as JSON is not valid JSON.')
  if (error.code === 'FST_PROTO_VIOLATION') return new ServiceError('VALIDATION_ERROR', 400, 'Form field names "__proto__" and "constructor" are not allowed.')
  if (error.code === undefined && MALFORMED_MULTIPART.test(error.message)) {
    return new ServiceError('MALFORMED_MULTIPART', 400, 'The multipart/form-data body is malformed or incomplete.')
  }
  if (error.validation !== undefined) {
    // A POST without any body fails the multipart body schema; what the caller missed is the file.
    if (error.validationContext === 'body' && request.body == null) return new NoFileError()
    return new ServiceError('VALIDATION_ERROR', 400, error.message)
  }
  return undefined
}

export function errorBody (error: ServiceError): ErrorBody {
  return {
    statusCode: error.statusCode,
    code: error.code,
    error: STATUS_CODES[error.statusCode] ?? 'Error',
    message: error.message
  }
}

declare module 'fastify' {
  interface FastifyReply {
    /** The code of the error this reply carries, for the audit trail (plugins/app/audit.ts) and the metrics. */
    errorCode?: string
  }
}

/** Sends the typed error body; errors that say when to come back (QUEUE_FULL, RECORDS_UNAVAILABLE) get Retry-After. */
export function sendError (reply: FastifyReply, error: ServiceError): FastifyReply {
  const { retryAfterSeconds } = error as ServiceError & { retryAfterSeconds?: number }
  if (retryAfterSeconds !== undefined) reply.header('retry-after', String(retryAfterSeconds))
  reply.errorCode = error.code
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(errorBody(error))
}

const CLIENT_ERRORS: Record<string, ServiceError> = {
  ERR_HTTP_REQUEST_TIMEOUT: new RequestTimeoutError(),
  HPE_HEADER_OVERFLOW: new ServiceError('HEADERS_TOO_LARGE', 431, 'The request headers are too large.')
}

/**
 * Node's `clientError` (malformed HTTP, header/request timeouts: the request never reached Fastify's routing)
 * answered with the same typed body, then the connection is closed. Passed to Fastify as `clientErrorHandler`.
 */
export function clientErrorHandler (error: Error & { code?: string }, socket: Socket): void {
  // Node's own fallback uses the same private field: a response already on its way cannot be replaced.
  const responseStarted = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage?.headersSent === true
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || !socket.writable || responseStarted) {
    socket.destroy()
    return
  }
  const known = CLIENT_ERRORS[error.code ?? ''] ?? new ServiceError('BAD_REQUEST', 400, 'The request is not valid HTTP.')
  const body = JSON.stringify(errorBody(known))
  socket.end(`HTTP/1.1 ${known.statusCode} ${STATUS_CODES[known.statusCode]}\r\nConnection: close\r\n` +
    `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}

/**
 * The one place where failures become HTTP answers: typed JSON `{ statusCode, code, error, message }`,
 * never a stack trace or an internal path. Unexpected errors are logged in full and answered generically.
 */
export default fp(async (app) => {
  app.decorateReply('errorCode', undefined)
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const known = error instanceof ServiceError ? error : fromFrameworkError(error, request, app.config.maxFileBytes)
    if (known !== undefined) {
      request.log.info({ code: known.code, statusCode: known.statusCode }, 'request rejected')
      return sendError(reply, known)
    }
    const status = error.statusCode ?? 500
    if (status >= 400 && status < 500) {
      const code = (STATUS_CODES[status] ?? 'Bad Request').toUpperCase().replace(/[^A-Z]+/g, '_')
      return sendError(reply, new ServiceError(code, status, error.message))
    }
    request.log.error({ err: error }, 'unexpected error')
    return sendError(reply, new InternalError())
  })

  app.setNotFoundHandler((request, reply) => {
    return sendError(reply, new ServiceError('NOT_FOUND', 404, `Route ${request.method} ${request.url.split('?')[0]} not found.`))
  })
}, { name: 'errors', dependencies: ['config'] })
