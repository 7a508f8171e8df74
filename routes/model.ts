import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../schemas/error.js'
import { ModelInfoSchema } from '../schemas/model.js'
import { refTo } from '../schemas/ref.js'

const model: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/model', {
    schema: {
      tags: ['service'],
      summary: 'Metadata of the model being served',
      response: { 200: refTo(ModelInfoSchema), ...errorResponses(503) }
    }
  }, async () => {
    const classifier = app.model.get()
    const { config } = app
    const { spec } = classifier
    const { width, height, channels, layout, resize, scale, mean, std } = spec.input
    return {
      name: spec.name,
      version: spec.version,
      sha256: classifier.modelSha256,
      input: {
        shape: layout === 'NCHW' ? [null, channels, height, width] : [null, height, width, channels],
        layout,
        channels,
        width,
        height
      },
      classes: spec.classes,
      preprocessing: {
        resize,
        size: [width, height],
        scale,
        mean,
        std,
        formula: 'value = (pixel * scale - mean[c]) / std[c], pixel in 0..255 after resizing'
      },
      dicom: { window: classifier.dicomWindow, windowSource: config.dicomWindowSource, modalities: config.dicomModalities },
      limits: { maxFileBytes: config.maxFileBytes, maxPixels: config.maxPixels, maxBatchFiles: config.batchMaxFiles, maxFrames: config.dicomMaxFrames },
      threshold: spec.threshold,
      temperature: spec.temperature,
      metrics: spec.metrics ?? {}
    }
  })
}

export default model
