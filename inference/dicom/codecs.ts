import { createRequire } from 'node:module'
import { CorruptDicomError } from './errors.js'
import { decodeRle } from './rle.js'

/** One decoded frame: samples of up to 8 bits take one byte each, wider ones two bytes little endian. */
export interface DecodedFrame {
  bytes: Uint8Array
  width: number
  height: number
  bitsPerSample: number
  components: number
}

/** The shape shared by the Cornerstone WebAssembly decoders (CharLS, OpenJPEG, libjpeg-turbo). */
interface WasmDecoder {
  getEncodedBuffer: (length: number) => Uint8Array
  decode: () => void
  getFrameInfo: () => { width: number, height: number, bitsPerSample: number, componentCount: number }
  getDecodedBuffer: () => Uint8Array
  delete: () => void
}

type WasmFactory = (overrides: { print: () => void, printErr: () => void }) => Promise<Record<string, new () => WasmDecoder>>

interface WasmCodec {
  name: string
  module: string
  decoder: string
}

const CHARLS = '@cornerstonejs/codec-charls/decodewasmjs'
const OPENJPEG = '@cornerstonejs/codec-openjpeg/decodewasmjs'
const LIBJPEG_TURBO = '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs'

/** Compressed transfer syntaxes decoded by a maintained codec package (WebAssembly shipped in the npm package). */
const WASM_CODECS: Record<string, WasmCodec> = {
  '1.2.840.10008.1.2.4.50': { name: 'JPEG Baseline', module: LIBJPEG_TURBO, decoder: 'JPEGDecoder' },
  '1.2.840.10008.1.2.4.80': { name: 'JPEG-LS Lossless', module: CHARLS, decoder: 'JpegLSDecoder' },
  '1.2.840.10008.1.2.4.81': { name: 'JPEG-LS Near-Lossless', module: CHARLS, decoder: 'JpegLSDecoder' },
  '1.2.840.10008.1.2.4.90': { name: 'JPEG 2000 Lossless', module: OPENJPEG, decoder: 'J2KDecoder' },
  '1.2.840.10008.1.2.4.91': { name: 'JPEG 2000', module: OPENJPEG, decoder: 'J2KDecoder' }
}
export const RLE_LOSSLESS = '1.2.840.10008.1.2.5'

export function isEncapsulatedSyntax (uid: string): boolean {
  return uid in WASM_CODECS || uid === RLE_LOSSLESS
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

async function decodeWasm (codec: WasmCodec, encoded: Uint8Array): Promise<DecodedFrame> {
  const Decoder = (await loadModule(codec.module))[codec.decoder]
  const decoder = new Decoder()
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded)
    decoder.decode()
    const info = decoder.getFrameInfo()
    // The decoded buffer lives in WebAssembly memory that delete() frees: copy it out first.
    const bytes = Uint8Array.from(decoder.getDecodedBuffer())
    return { bytes, width: info.width, height: info.height, bitsPerSample: info.bitsPerSample, components: info.componentCount }
  } catch (error) {
    // Emscripten raises numbers or plain objects for C++ exceptions; the caller only needs to know it failed.
    throw new CorruptDicomError(`the ${codec.name} pixel data could not be decoded (${error instanceof Error ? error.message : 'codec error'})`)
  } finally {
    decoder.delete()
  }
}

/**
 * Decodes one encapsulated frame. `bitsAllocated` and the image size come from the header: RLE segments
 * carry no dimensions of their own.
 */
export async function decodeEncapsulatedFrame (
  uid: string, encoded: Uint8Array, image: { rows: number, columns: number, bitsAllocated: number }
): Promise<DecodedFrame> {
  if (uid === RLE_LOSSLESS) return decodeRle(encoded, image)
  return await decodeWasm(WASM_CODECS[uid], encoded)
}
