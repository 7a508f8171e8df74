import sharp from 'sharp'
import type { DecodedImage } from './decode.js'
import type { ModelSpec } from './model-spec.js'

/**
 * Resizes decoded pixels to the model's input size. This and `toTensorData` are the only preprocessing
 * path: the service, the CLI, evaluation, the benchmark and the training data export all call them, so the
 * pixels a model was trained and measured on are the pixels it is served.
 */
export async function resizeForModel (image: DecodedImage, spec: ModelSpec): Promise<Buffer> {
  const { width, height, channels, resize } = spec.input
  const { data, info } = await sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: image.channels } })
    .resize(width, height, { fit: resize, background: { r: 0, g: 0, b: 0, alpha: 1 } })
    .removeAlpha()
    // Letterbox padding is added in sRGB; the model's colour mode is set after it.
    .toColourspace(channels === 1 ? 'b-w' : 'srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true })
  if (info.width !== width || info.height !== height || info.channels !== channels) {
    throw new Error(`resize produced ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x${channels}`)
  }
  return data
}

/** uint8 HxWxC pixels -> Float32 values `(pixel * scale - mean[c]) / std[c]` in the model's layout. */
export function toTensorData (resized: Buffer, spec: ModelSpec): Float32Array {
  const { width, height, channels, layout, scale, mean, std } = spec.input
  const plane = width * height
  const out = new Float32Array(plane * channels)
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < channels; c++) {
      const value = (resized[i * channels + c] * scale - mean[c]) / std[c]
      out[layout === 'NCHW' ? c * plane + i : i * channels + c] = value
    }
  }
  return out
}

export async function preprocess (image: DecodedImage, spec: ModelSpec): Promise<Float32Array> {
  return toTensorData(await resizeForModel(image, spec), spec)
}
