import { ServiceError } from '../errors.js'

/**
 * Conversion failures. They surface at start-up (MODEL_PATH) or in `npm run convert`, never per request,
 * but carry a code and status like every other typed error so callers can tell them apart.
 */
export class KerasFileError extends ServiceError {
  constructor (message: string) {
    super('KERAS_INVALID_FILE', 422, message)
  }
}

export class UnsupportedKerasLayerError extends ServiceError {
  readonly layerName: string
  readonly className: string

  constructor (layerName: string, className: string, detail = 'this layer class is not supported by the converter') {
    super('KERAS_UNSUPPORTED_LAYER', 422, `layer "${layerName}" (${className}): ${detail}`)
    this.layerName = layerName
    this.className = className
  }
}

/** The user sidecar or MODEL_* variables cannot complete the model description the Keras file lacks. */
export class KerasModelSpecError extends ServiceError {
  constructor (message: string) {
    super('KERAS_MODEL_SPEC_INVALID', 422, message)
  }
}

/**
 * A Keras file whose weights are damaged: an HDF5 checksum failed, a weight's shape disagrees with the layer's
 * config, or its values cannot come from training (not finite, astronomically large, or a stretch of kilobytes of
 * one repeated value inside a tensor that otherwise varies: a block overwritten on disk or in transfer).
 */
export class KerasDamagedFileError extends ServiceError {
  constructor (message: string) {
    super('KERAS_DAMAGED_FILE', 422, `The Keras file is damaged: ${message}.`)
  }
}
