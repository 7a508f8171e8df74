import sharp, { type OutputInfo, type Sharp } from 'sharp'
import { asCorruptImageError, decodeCheckedImage, decodeImage, decodingPipeline, readCheckedHeader, sniffFormat, type DecodedImage, type DecodeOptions } from './decode.js'
import type { ModelSpec } from './model-spec.js'

/**
 * Resizes decoded pixels to the model's input size. With `decodeForModel` (the same bytes in one pipeline) and
 * `toTensorData` this is the only preprocessing path: the service, the CLI, evaluation, the benchmark and the
 * training data export all call them, so the pixels a model was trained and measured on are the pixels it is served.
 */
export async function resizeForModel (image: DecodedImage, spec: ModelSpec): Promise<Buffer> {
  const raw = sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: image.channels } })
  return checkedModelPixels(await toModelSize(raw, spec).toBuffer({ resolveWithObject: true }), spec)
}

/**
 * Bytes -> model-size pixels, as the service runs it. JPEG and PNG are decoded and resized in one libvips
 * pipeline when their samples are 8-bit sRGB or grey (nearly all CT exports), one pass over the pixels instead of
 * a full-size intermediate image. A JPEG at least three times the model input on the axis that sets the scale
 * (672 px for 224: large screenshots and exports; a 512x512 slice is not) is decoded by libjpeg at 1/2, 1/4 or 1/8
 * scale first (sharp's shrink-on-load): a quarter or less of the decoding work and memory, with pixels that
 * differ slightly from a full decode followed by the resize (test/preprocess.test.ts bounds the difference).
 * Below that size the result is byte for byte `resizeForModel(await decodeImage(bytes))`, which the training export and evaluation use where they need the
 * full-size image (in-painting, overlays): every ct-kidney slice and yildirim image is below it (checked by the
 * same test), and larger files are exported with this function. DICOM goes through `decodeImage` (HU windowing).
 */
export async function decodeForModel (bytes: Buffer, spec: ModelSpec, options: DecodeOptions): Promise<Buffer> {
  const format = sniffFormat(bytes)
  if (format !== 'jpeg' && format !== 'png') return await resizeForModel(await decodeImage(bytes, options), spec)
  const { eightBitGreyOrSrgb, reoriented } = await readCheckedHeader(bytes, format, options.maxPixels)
  // In one pipeline, 16-bit and CMYK sources would be resized before their conversion to 8-bit sRGB/grey, and
  // EXIF-oriented ones rotated after the resize: both would round differently, so they take the two steps.
  if (!eightBitGreyOrSrgb || reoriented) return await resizeForModel(await decodeCheckedImage(bytes, options), spec)
  const pipeline = toModelSize(decodingPipeline(bytes, options), spec)
  return checkedModelPixels(await asCorruptImageError(async () => await pipeline.toBuffer({ resolveWithObject: true })), spec)
}

function toModelSize (pipeline: Sharp, spec: ModelSpec): Sharp {
  const { width, height, channels, resize } = spec.input
  return pipeline
    .resize(width, height, { fit: resize, background: { r: 0, g: 0, b: 0, alpha: 1 } })
    .removeAlpha()
    // Letterbox padding is added in sRGB; the model's colour mode is set after it.
    .toColourspace(channels === 1 ? 'b-w' : 'srgb')
    .raw({ depth: 'uchar' })
}

/** A wrong output size is a bug here, not a bad upload: it surfaces as a 500, never as the client's 422. */
function checkedModelPixels ({ data, info }: { data: Buffer, info: OutputInfo }, spec: ModelSpec): Buffer {
  const { width, height, channels } = spec.input
  if (info.width !== width || info.height !== height || info.channels !== channels) {
    throw new Error(`resize produced ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x${channels}`)
  }
  return data
}

/**
 * uint8 HxWxC pixels -> Float32 values `(pixel * scale - mean[c]) / std[c]` in the model's layout, written into
 * `out` when given (one image's slice of a batch buffer, so that no per-image tensor is allocated and copied).
 */
export function toTensorData (resized: Uint8Array, spec: ModelSpec, out?: Float32Array): Float32Array {
  const { width, height, channels, layout, scale, mean, std } = spec.input
  const plane = width * height
  if (resized.length !== plane * channels) {
    throw new RangeError(`model input size: expected ${width}x${height}x${channels} = ${plane * channels} pixel values, got ${resized.length}`)
  }
  const target = out ?? new Float32Array(plane * channels)
  if (target.length !== plane * channels) throw new RangeError(`tensor size ${target.length}, expected ${plane * channels}`)
  // One table of the 256 possible values per channel: the same arithmetic, done once instead of per pixel.
  const table = Array.from({ length: channels }, (_, c) => Float32Array.from({ length: 256 }, (_, v) => (v * scale - mean[c]) / std[c]))
  // One channel at a time with fixed strides: this loop runs for every pixel of every request on the main thread.
  const step = layout === 'NCHW' ? 1 : channels
  for (let c = 0; c < channels; c++) {
    const values = table[c]
    for (let i = 0, from = c, to = layout === 'NCHW' ? c * plane : c; i < plane; i++, from += channels, to += step) {
      target[to] = values[resized[from]]
    }
  }
  return target
}
