import fp from 'fastify-plugin'
import multipart from '@fastify/multipart'
import { UnsupportedMediaTypeError } from '../../inference/errors.js'

/**
 * Uploads are parsed into memory with hard limits (the largest accepted file is MAX_FILE_BYTES): the bytes
 * are needed whole for format sniffing and decoding, and nothing touches disk before the image is valid.
 */
export default fp(async (app) => {
  await app.register(multipart, {
    attachFieldsToBody: true,
    throwFileSizeLimit: true,
    limits: {
      fileSize: app.config.maxFileBytes,
      files: app.config.maxFiles,
      fields: app.config.maxFields,
      fieldNameSize: 100,
      fieldSize: app.config.maxFieldBytes,
      parts: app.config.maxFiles + app.config.maxFields,
      headerPairs: 100
    }
  })
  // A JSON or text body sent to an upload route is refused by type before any parser reads it.
  app.addHook('onRequest', async (request) => {
    const uploadRoute = request.routeOptions.schema?.consumes?.includes('multipart/form-data') === true
    const mediaType = request.headers['content-type']?.split(';')[0].trim().toLowerCase()
    if (uploadRoute && mediaType !== undefined && mediaType !== 'multipart/form-data') {
      throw new UnsupportedMediaTypeError('Send the image as multipart/form-data in the field "file".')
    }
  })
}, { name: 'multipart', dependencies: ['config'] })
