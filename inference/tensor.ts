import type { ModelSpec } from './model-spec.js'

/**
 * Last step of an upload's path: uint8 HxWxC model-size pixels -> Float32 values `(pixel * scale - mean[c]) / std[c]`
 * in the model's layout, written into `out` when given (one image's slice of a batch buffer, so that no per-image
 * tensor is allocated and copied).
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
