import sharp, { type OutputInfo, type Sharp } from 'sharp'
import type { DicomInstance } from './dicom/dataset.js'
import { checkImageHeader, decodeCheckedImage, decodeDicomUpload, decodePixels, type DecodeOptions } from './decode.js'
import { UnsupportedMediaTypeError } from './errors.js'
import type { DecodedImage } from './image.js'
import type { ModelSpec } from './model-spec.js'
import { sniffFormat, type ImageFormat } from './sniff.js'

/** What one upload gives the model, and what the one parse of a DICOM file said about the instance. */
export interface ModelInput {
  format: ImageFormat
  /** uint8, the model's input size and channels (inference/tensor.ts turns them into the tensor). */
  pixels: Buffer
  /** The uploaded image's size after EXIF orientation (DICOM: Columns x Rows): what findings' boxes are given in. */
  size: { width: number, height: number }
  /** A DICOM upload's Study/Series/SOP Instance UIDs and its place in the series. */
  dicom?: DicomInstance
  /** A multi-frame DICOM object: every frame's model input (`pixels` is the first's), in frame order. */
  frames?: FrameInput[]
}

export interface FrameInput {
  pixels: Buffer
  /** The frame's position along the slice normal, mm (functional groups' Plane Position). */
  slicePosition?: number
}

/**
 * An upload's path to the model's input pixels, as the service runs it, step after step:
 *   sniff (inference/sniff.ts) -> pixel budget (inference/image-header.ts; DICOM: in its decoder) ->
 *   decode (inference/decode.ts; DICOM: inference/dicom/, in a worker thread of the service) -> model size (here)
 * and then, in the batch, the tensor (inference/tensor.ts). The service, the CLI, evaluation, the benchmark and the
 * training data export all call this (or `decodeForModel`, its pixels), so the pixels a model was trained and
 * measured on are the pixels it is served.
 *
 * JPEG and PNG are decoded and resized in one libvips pipeline when their samples are 8-bit sRGB or grey (nearly
 * all CT exports), one pass over the pixels instead of a full-size intermediate image. A JPEG at least three times
 * the model input on the axis that sets the scale (672 px for 224: large screenshots and exports; a 512x512 slice
 * is not) is decoded by libjpeg at 1/2, 1/4 or 1/8 scale first (sharp's shrink-on-load): a quarter or less of the
 * decoding work and memory, with pixels that differ slightly from a full decode followed by the resize
 * (test/preprocess.test.ts bounds the difference). Below that size the result is byte for byte
 * `resizeForModel(await decodeImage(bytes))`, which the training export and evaluation use where they need the
 * full-size image (in-painting, overlays): every ct-kidney slice and yildirim image is below it (checked by the
 * same test), and larger files are exported with this function.
 */
export async function prepareModelInput (bytes: Buffer, spec: ModelSpec, options: DecodeOptions): Promise<ModelInput> {
  const format = sniffFormat(bytes)
  if (format === undefined) throw new UnsupportedMediaTypeError()
  if (format === 'dicom') {
    const { frames, ...instance } = await decodeDicomUpload(bytes, options)
    const inputs: FrameInput[] = []
    for (const { image, slicePosition } of frames) {
      inputs.push({ pixels: await resizeForModel(image, spec), ...(slicePosition === undefined ? {} : { slicePosition }) })
    }
    return { format, pixels: inputs[0].pixels, size: sizeOf(frames[0].image), dicom: instance, ...(inputs.length > 1 ? { frames: inputs } : {}) }
  }
  const { eightBitGreyOrSrgb, reoriented, width, height, decoded } = await checkImageHeader(bytes, format, options)
  // In one pipeline, 16-bit and CMYK sources would be resized before their conversion to 8-bit sRGB/grey, and
  // EXIF-oriented ones rotated after the resize: both would round differently, so they take the two steps.
  if (!eightBitGreyOrSrgb || reoriented) {
    const image = decoded ?? await decodeCheckedImage(bytes, options)
    return { format, pixels: await resizeForModel(image, spec), size: sizeOf(image) }
  }
  const pixels = checkedModelPixels(await decodePixels(bytes, options, async (pipeline) => await toModelSize(pipeline, spec).toBuffer({ resolveWithObject: true })), spec)
  return { format, pixels, size: { width, height } }
}

function sizeOf (image: DecodedImage): { width: number, height: number } {
  return { width: image.width, height: image.height }
}

/** `prepareModelInput`'s pixels: what training export, evaluation and the tests call. */
export async function decodeForModel (bytes: Buffer, spec: ModelSpec, options: DecodeOptions): Promise<Buffer> {
  return (await prepareModelInput(bytes, spec, options)).pixels
}

/** Decoded full-size pixels resized to the model's input size (the second half of the two-step path). */
export async function resizeForModel (image: DecodedImage, spec: ModelSpec): Promise<Buffer> {
  const raw = sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: image.channels } })
  return checkedModelPixels(await toModelSize(raw, spec).toBuffer({ resolveWithObject: true }), spec)
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
