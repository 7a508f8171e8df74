import { STATUS_CODES } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { QueueFullError } from '../../inference/batcher.js'
import { FileTooLargeError, NoFileError, ServiceError, UnsupportedMediaTypeError } from '../../inference/errors.js'

export interface ErrorBody {
  statusCode: number
  code: string
  error: string
  message: string
}

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
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ServiceError('TOO_MANY_PARTS', 400, 'Too many form fields in one request.')
  }
  if (error.validation !== undefined) {
    // A POST without any body fails the multipart body schema; what the caller missed is the file.
    if (error.validationContext === 'body' && request.body == null) return new NoFileError()
    return new ServiceError('VALIDATION_ERROR', 400, error.message)
  }
  return undefined
}

export function sendError (reply: FastifyReply, error: ServiceError): FastifyReply {
  if (error instanceof QueueFullError) reply.header('retry-after', String(error.retryAfterSeconds))
  const body: ErrorBody = {
    statusCode: error.statusCode,
    code: error.code,
    error: STATUS_CODES[error.statusCode] ?? 'Error',
    message: error.message
  }
  return reply.code(error.statusCode).type('application/json; charset=utf-8').send(body)
}

/**
 * The one place where failures become HTTP answers: typed JSON `{ statusCode, code, error, message }`,
 * never a stack trace or an internal path. Unexpected errors are logged in full and answered generically.
 */
export default fp(async (app) => {
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
    return sendError(reply, new ServiceError('INTERNAL_ERROR', 500, 'An unexpected error occurred; it has been logged.'))
  })

  app.setNotFoundHandler((request, reply) => {
    return sendError(reply, new ServiceError('NOT_FOUND', 404, `Route ${request.method} ${request.url.split('?')[0]} not found.`))
  })
}, { name: 'errors', dependencies: ['config'] })
