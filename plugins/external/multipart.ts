import fp from 'fastify-plugin'
import multipart from '@fastify/multipart'

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
      files: 1,
      fields: 10,
      fieldNameSize: 100,
      fieldSize: 1024,
      parts: 11,
      headerPairs: 100
    }
  })
}, { name: 'multipart', dependencies: ['config'] })
