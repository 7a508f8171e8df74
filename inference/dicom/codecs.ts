import { createRequire } from 'node:module'
import { ImageTooLargeError } from '../errors.js'
import { checkJpegStructure } from '../jpeg-structure.js'
import { JPEG_LS_SOF, JPEG_SOF, readJ2kFrameHeader, readRleFrameHeader, readSofFrameHeader, type DecodedFrame, type FrameGeometry, type FrameHeader } from './codestream.js'
import { CorruptDicomError } from './errors.js'
import { decodeJpegLossless, JPEG_LOSSLESS_SOF } from './jpeg-lossless.js'
import { decodeRle } from './rle.js'

/** The shape shared by the Cornerstone WebAssembly decoders (CharLS, OpenJPEG, libjpeg-turbo). */
interface WasmDecoder {
  getEncodedBuffer: (length: number) => Uint8Array
  decode: () => void
  getFrameInfo: () => { width: number, height: number, bitsPerSample: number, componentCount: number }
  getDecodedBuffer: () => Uint8Array
  delete: () => void
}

type WasmFactory = (overrides: { print: () => void, printErr: () => void }) => Promise<Record<string, new () => WasmDecoder>>

/**
 * One compressed transfer syntax: how to read the codestream's own frame header (before decoding) and how to
 * decode it. Adding a codec is one entry in CODECS below.
 */
interface Codec {
  name: string
  readFrameHeader: (encoded: Uint8Array, geometry: FrameGeometry) => FrameHeader
  decode: (encoded: Uint8Array, geometry: FrameGeometry) => Promise<DecodedFrame>
}

const CHARLS = '@cornerstonejs/codec-charls/decodewasmjs'
const OPENJPEG = '@cornerstonejs/codec-openjpeg/decodewasmjs'
const LIBJPEG_TURBO = '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs'

/** A codec whose decoder is a maintained package's WebAssembly build (shipped in the npm package). */
function wasmCodec (name: string, module: string, decoder: string, sofMarkers?: ReadonlySet<number>): Codec {
  return {
    name,
    readFrameHeader: sofMarkers === undefined
      ? (encoded, geometry) => readJ2kFrameHeader(encoded, geometry, name)
      : (encoded) => readSofFrameHeader(encoded, sofMarkers, name),
    decode: async (encoded) => await decodeWasm(name, module, decoder, encoded)
  }
}

function jpegLosslessCodec (name: string): Codec {
  return {
    name,
    readFrameHeader: (encoded) => readSofFrameHeader(encoded, JPEG_LOSSLESS_SOF, name),
    decode: async (encoded, geometry) => decodeJpegLossless(encoded, geometry)
  }
}

/** libjpeg-turbo decodes progressive JPEG too, whose every scan goes over the whole frame again (inference/jpeg-structure.ts). */
function jpegBaselineCodec (): Codec {
  const codec = wasmCodec('JPEG Baseline', LIBJPEG_TURBO, 'JPEGDecoder', JPEG_SOF)
  return {
    ...codec,
    readFrameHeader: (encoded, geometry) => {
      const header = codec.readFrameHeader(encoded, geometry)
      checkJpegStructure(encoded)
      return header
    }
  }
}

const CODECS: Record<string, Codec> = {
  '1.2.840.10008.1.2.4.50': jpegBaselineCodec(),
  '1.2.840.10008.1.2.4.57': jpegLosslessCodec('JPEG Lossless'),
  '1.2.840.10008.1.2.4.70': jpegLosslessCodec('JPEG Lossless SV1'),
  '1.2.840.10008.1.2.4.80': wasmCodec('JPEG-LS Lossless', CHARLS, 'JpegLSDecoder', JPEG_LS_SOF),
  '1.2.840.10008.1.2.4.81': wasmCodec('JPEG-LS Near-Lossless', CHARLS, 'JpegLSDecoder', JPEG_LS_SOF),
  '1.2.840.10008.1.2.4.90': wasmCodec('JPEG 2000 Lossless', OPENJPEG, 'J2KDecoder'),
  '1.2.840.10008.1.2.4.91': wasmCodec('JPEG 2000', OPENJPEG, 'J2KDecoder'),
  '1.2.840.10008.1.2.5': { name: 'RLE Lossless', readFrameHeader: readRleFrameHeader, decode: async (encoded, geometry) => decodeRle(encoded, geometry) }
}

export function isEncapsulatedSyntax (uid: string): boolean {
  return uid in CODECS
}

// Emscripten factories are CommonJS; each WebAssembly module is compiled once, on first use, with its
// console output (OpenJPEG logs every header it reads) silenced.
const require = createRequire(import.meta.url)
const modules = new Map<string, ReturnType<WasmFactory>>()

function loadModule (name: string): ReturnType<WasmFactory> {
  let loaded = modules.get(name)
  if (loaded === undefined) {
    loaded = (require(name) as WasmFactory)({ print: () => {}, printErr: () => {} })
    modules.set(name, loaded)
  }
  return loaded
}

async function decodeWasm (name: string, module: string, decoderName: string, encoded: Uint8Array): Promise<DecodedFrame> {
  const Decoder = (await loadModule(module))[decoderName]
  const decoder = new Decoder()
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded)
    decoder.decode()
    const info = decoder.getFrameInfo()
    // The decoded buffer lives in WebAssembly memory that delete() frees: copy it out first.
    const bytes = Uint8Array.from(decoder.getDecodedBuffer())
    return { bytes, width: info.width, height: info.height, bitsPerSample: info.bitsPerSample, components: info.componentCount }
  } catch {
    // Emscripten raises numbers or plain objects for C++ exceptions, in the library's words: the caller gets ours.
    throw new CorruptDicomError(`the ${name} pixel data could not be decoded`)
  } finally {
    decoder.delete()
  }
}

/**
 * Decodes one encapsulated frame after reading its codestream's own frame header: a frame larger than the pixel
 * budget, or one that disagrees with Rows/Columns/BitsAllocated, is refused before the decoder allocates anything.
 */
export async function decodeEncapsulatedFrame (uid: string, encoded: Uint8Array, geometry: FrameGeometry, maxPixels: number): Promise<DecodedFrame> {
  const codec = CODECS[uid]
  const frame = codec.readFrameHeader(encoded, geometry)
  if (frame.width * frame.height > maxPixels) throw new ImageTooLargeError(frame.width, frame.height, maxPixels)
  if (frame.width !== geometry.columns || frame.height !== geometry.rows || frame.components !== 1 || frame.bitsPerSample > geometry.bitsAllocated) {
    throw new CorruptDicomError(`the ${codec.name} codestream declares ${frame.width}x${frame.height}x${frame.components} at ${frame.bitsPerSample} bits, ` +
      `the header ${geometry.columns}x${geometry.rows}x1 at ${geometry.bitsAllocated}`)
  }
  return await codec.decode(encoded, geometry)
}
