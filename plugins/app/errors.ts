import { maxHeaderSize, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { AppConfig } from './config.js'
import { setSecurityHeaders } from '../external/helmet.js'
import { PREDICT_MAX_FILES } from '../external/multipart.js'
import { unknownParameterMessage, validationMessage } from './validation-message.js'
import { FileTooLargeError, NoFileError, RetryLaterError, ServiceError, UnsupportedMediaTypeError } from '../../inference/errors.js'

export interface ErrorBody {
  statusCode: number
  code: string
  error: string
  message: string
}

export class AuthenticationError extends ServiceError {
  constructor (message: string) {
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

/** Memory or event-loop pressure (@fastify/under-pressure), or a full in-flight budget on /health/ready. */
export class OverloadedError extends RetryLaterError {
  constructor (retryAfterSeconds: number) {
    super('OVERLOADED', 'The service is overloaded; retry after the delay given in Retry-After.', retryAfterSeconds)
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

/**
 * An accepted upload could not be kept under UPLOAD_DIR (a full or read-only file system, a directory removed or
 * unmounted, no file descriptor left): the answer is not given, as for a record that cannot be written, and the
 * caller retries later or on another instance. `reason` is ours; the system error stays in the log.
 */
export class UploadsUnavailableError extends RetryLaterError {
  constructor (readonly reason: string, retryAfterSeconds = 30) {
    super('UPLOADS_UNAVAILABLE', `The upload cannot be kept right now (${reason}); nothing was answered, retry after ${retryAfterSeconds} s.`, retryAfterSeconds)
  }
}

export class ShuttingDownError extends ServiceError {
  constructor () {
    super('SHUTTING_DOWN', 503, 'The service is shutting down; retry on another instance or shortly.')
  }
}

/** @fastify/busboy reports a broken multipart body with plain Errors; these are their messages. */
const MALFORMED_MULTIPART = /^(Multipart: Boundary not found|Unexpected end of multipart data|Unsupported Content-Type\.|.* terminated early due to unexpected end of multipart data)$/

/** The limit of the route that was exceeded, stated: a series client needs it to split its files. */
function tooManyFiles (request: FastifyRequest, config: AppConfig): ServiceError {
  if (request.routeOptions.url === '/predict/batch') {
    return new ServiceError('TOO_MANY_FILES', 400, `POST /predict/batch takes at most ${config.batchMaxFiles} files (BATCH_MAX_FILES; ` +
      'GET /model gives it as limits.maxBatchFiles): send a longer series in several requests.')
  }
  return new ServiceError('TOO_MANY_FILES', 400, `This route takes at most ${PREDICT_MAX_FILES} file in one request; ` +
    `send several slices with POST /predict/batch (at most ${config.batchMaxFiles} per request).`)
}

/** No route or file answers this path; the path is the caller's text, so it is not echoed back. */
function notFound (request: FastifyRequest): ServiceError {
  return new ServiceError('NOT_FOUND', 404, `No route answers ${request.method} on this path; see /docs for the API.`)
}

/** Errors raised by Fastify and its plugins, given the service's stable codes and our own wording. */
function fromFrameworkError (error: FastifyError, request: FastifyRequest, config: AppConfig): ServiceError | undefined {
  switch (error.code) {
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new FileTooLargeError(config.maxFileBytes)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new UnsupportedMediaTypeError('Send the image as multipart/form-data in the field "file".')
    case 'FST_FILES_LIMIT':
      return tooManyFiles(request, config)
    case 'FST_UNDER_PRESSURE':
      return new OverloadedError(config.pressure.retryAfterS)
    // @fastify/static refuses a path under /app/ it will not resolve (an empty segment, '..', a NUL) with 403: no file
    // answers it, and FORBIDDEN is this API's code for credentials without the scope.
    case 'FST_STATIC_FORBIDDEN_PATH':
      return notFound(request)
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ServiceError('TOO_MANY_PARTS', 400, 'Too many form fields in one request.')
  }
  if (error.code === 'FST_INVALID_JSON_FIELD_ERROR') return new ServiceError('VALIDATION_ERROR', 400, 'A form field declared as JSON is not valid JSON.')
  if (error.code === 'FST_PROTO_VIOLATION') {
    // @fastify/multipart refuses every name on Object.prototype, not only the two that pollute it.
    return new ServiceError('VALIDATION_ERROR', 400, 'A form field name is one every JavaScript object already has (__proto__, constructor, ' +
      'toString, hasOwnProperty, valueOf, __defineGetter__, ...): name the field otherwise.')
  }
  if (error.code === undefined && MALFORMED_MULTIPART.test(error.message)) {
    return new ServiceError('MALFORMED_MULTIPART', 400, 'The multipart/form-data body is malformed or incomplete.')
  }
  if (error.validation !== undefined) {
    // A POST without any body fails the multipart body schema; what the caller missed is the file.
    if (error.validationContext === 'body' && request.body == null) return new NoFileError()
    // Ajv's wording is the library's: the caller gets where the request differs from the API schema, in ours.
    const unknown = (error.validation[0] as { propertyName?: string } | undefined)?.propertyName
    if (unknown !== undefined) {
      return new ServiceError('VALIDATION_ERROR', 400, unknownParameterMessage(error.validationContext, unknown))
    }
    return new ServiceError('VALIDATION_ERROR', 400, validationMessage(error.validationContext, error.validation[0], request.routeOptions.schema as Record<string, unknown> | undefined))
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

/**
 * Unread request body Node may still read and discard after a refusal, so that the client, still sending, gets to
 * read the answer on a connection that stays usable (a 401 to an upload of a few hundred kB). Beyond it the
 * connection is closed instead: a refused 19 MiB upload is not read to its end.
 */
const DRAINED_BODY_BYTES = 1024 * 1024

/** Sends the typed error body; refusals for now (QUEUE_FULL, OVERLOADED, RECORDS_UNAVAILABLE, ...) get Retry-After. */
export function sendError (reply: FastifyReply, error: ServiceError): FastifyReply {
  if (error instanceof RetryLaterError) reply.header('retry-after', String(error.retryAfterSeconds))
  reply.errorCode = error.code
  const declared = Number(reply.request.headers['content-length'])
  if (reply.request.raw.complete === false && !(declared <= DRAINED_BODY_BYTES)) reply.header('connection', 'close')
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(errorBody(error))
}

/**
 * Errors Fastify's router raises before any route or hook runs (a malformed percent-encoding, a path parameter
 * longer than the router allows): Fastify's own answer would echo the path and its own code. Passed to Fastify as
 * `frameworkErrors`; the audit hook does not see these requests (they never reach a route's context), so they are
 * logged here. No hook runs for them either, so the headers every answer carries are set here: helmet's, the request
 * id, and the CORS headers, without which a browser front end would see a network error instead of this answer.
 */
export function frameworkErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const known = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
    ? new ServiceError('URI_TOO_LONG', 414, 'A path segment of this URL is too long for any route of this API.')
    : error.code === 'FST_ERR_BAD_URL'
      ? new ServiceError('BAD_URL', 400, 'The URL is not valid (a malformed percent-encoding).')
      : new InternalError()
  request.log.info({ code: known.code, statusCode: known.statusCode }, 'request rejected before routing')
  setSecurityHeaders(request.raw, reply.raw)
  reply.header('x-request-id', request.id)
  // A reply is a thenable that settles once it is sent: the callbacks must not return it.
  // corsHeaders is absent in an app built without the CORS plugin: no CORS headers then.
  Promise.resolve(request.server.corsHeaders?.(request.headers.origin) ?? {})
    .then((headers) => { reply.headers(headers) }, (err: unknown) => { request.log.error({ err }, 'CORS headers of a router error') })
    .then(() => { sendError(reply, known) })
    .catch((err: unknown) => { request.log.error({ err }, 'router error answer') })
}

/** Connections Node cut off at REQUEST_TIMEOUT_MS / HEADERS_TIMEOUT_MS (answered 408 below). */
const timedOutSockets = new WeakSet<Socket>()

const CLIENT_ERRORS: Record<string, ServiceError> = {
  ERR_HTTP_REQUEST_TIMEOUT: new RequestTimeoutError(),
  // Node counts the request line (the URL and its query) with the headers: a long query string is refused here too.
  HPE_HEADER_OVERFLOW: new ServiceError('HEADERS_TOO_LARGE', 431, `The request line (the URL with its query) and the headers are too large: together ` +
    `they may take at most ${maxHeaderSize} bytes.`)
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
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') timedOutSockets.add(socket)
  const known = CLIENT_ERRORS[error.code ?? ''] ?? new ServiceError('BAD_REQUEST', 400, 'The request is not valid HTTP.')
  const body = JSON.stringify(errorBody(known))
  socket.end(`HTTP/1.1 ${known.statusCode} ${STATUS_CODES[known.statusCode]}\r\nConnection: close\r\n` +
    `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
}

/**
 * An Expect header other than 100-continue: Node answers it before Fastify sees the request (417 with an empty
 * body, none of our headers); listening to `checkExpectation` replaces that answer with ours.
 */
function expectationFailed (request: IncomingMessage, response: ServerResponse): void {
  const body = JSON.stringify(errorBody(new ServiceError('EXPECTATION_FAILED', 417, 'Only the expectation "100-continue" is supported; send the request without this Expect header.')))
  setSecurityHeaders(request, response)
  response.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body)
}

/**
 * The one place where failures become HTTP answers: typed JSON `{ statusCode, code, error, message }`,
 * never a stack trace or an internal path. Unexpected errors are logged in full and answered generically.
 */
export default fp(async (app) => {
  app.decorateReply('errorCode', undefined)
  app.server.on('checkExpectation', expectationFailed)
  app.setErrorHandler((error: FastifyError, request, reply) => {
    // The client went away (closed the connection, or its request timed out): nobody reads an answer, and it is
    // the client's doing, not a fault of the service. Logged without a stack, never as an error.
    if (request.raw.socket?.destroyed === true) {
      if (timedOutSockets.has(request.raw.socket)) request.log.warn({ code: 'REQUEST_TIMEOUT' }, 'request timed out before its body arrived')
      else request.log.info({ code: error.code ?? error.name }, 'client aborted the request')
      return reply.hijack()
    }
    const known = error instanceof ServiceError ? error : fromFrameworkError(error, request, app.config)
    if (known !== undefined) {
      request.log.info({ code: known.code, statusCode: known.statusCode }, 'request rejected')
      return sendError(reply, known)
    }
    const status = error.statusCode ?? 500
    if (status >= 400 && status < 500) {
      // Fastify's and its plugins' own 4xx texts are theirs: the caller gets the status in our words.
      const code = (STATUS_CODES[status] ?? 'Bad Request').toUpperCase().replace(/[^A-Z]+/g, '_')
      return sendError(reply, new ServiceError(code, status, `The request was refused: ${STATUS_CODES[status] ?? 'bad request'}.`))
    }
    request.log.error({ err: error }, 'unexpected error')
    return sendError(reply, new InternalError())
  })

  app.setNotFoundHandler((request, reply) => sendError(reply, notFound(request)))
}, { name: 'errors', dependencies: ['config'] })
