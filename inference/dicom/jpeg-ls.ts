import { createRequire } from 'node:module'
import { CorruptDicomError } from './errors.js'

interface JpegLSDecoder {
  getEncodedBuffer(length: number): Uint8Array
  decode(): void
  getFrameInfo(): { width: number, height: number, bitsPerSample: number, componentCount: number }
  getDecodedBuffer(): Uint8Array
  delete(): void
}

interface CharLSModule {
  JpegLSDecoder: new () => JpegLSDecoder
}

export interface JpegLSFrame {
  /** Samples as decoded by CharLS: one byte each up to 8 bits per sample, else two bytes little endian. */
  bytes: Uint8Array
  width: number
  height: number
  bitsPerSample: number
  components: number
}

// The Emscripten factory is CommonJS; the WebAssembly module is compiled once, on first use.
const require = createRequire(import.meta.url)
let charls: Promise<CharLSModule> | undefined

function loadCharLS (): Promise<CharLSModule> {
  charls ??= (require('@cornerstonejs/codec-charls/decodewasmjs') as () => Promise<CharLSModule>)()
  return charls
}

/** Decodes one JPEG-LS bitstream (lossless or near-lossless) with the CharLS WebAssembly build. */
export async function decodeJpegLS (encoded: Uint8Array): Promise<JpegLSFrame> {
  const { JpegLSDecoder } = await loadCharLS()
  const decoder = new JpegLSDecoder()
  try {
    decoder.getEncodedBuffer(encoded.length).set(encoded)
    decoder.decode()
    const info = decoder.getFrameInfo()
    // The decoded buffer lives in WebAssembly memory that delete() frees: copy it out first.
    const bytes = Uint8Array.from(decoder.getDecodedBuffer())
    return { bytes, width: info.width, height: info.height, bitsPerSample: info.bitsPerSample, components: info.componentCount }
  } catch (error) {
    // Emscripten raises numbers or plain objects for C++ exceptions; the caller only needs to know it failed.
    throw new CorruptDicomError(`the JPEG-LS pixel data could not be decoded (${error instanceof Error ? error.message : 'CharLS error'})`)
  } finally {
    decoder.delete()
  }
}
