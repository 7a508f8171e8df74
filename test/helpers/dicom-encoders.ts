import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

interface J2KEncoder {
  getDecodedBuffer: (info: { width: number, height: number, bitsPerSample: number, componentCount: number, isSigned: boolean, isUsingColorTransform: boolean }) => Uint8Array
  setQuality: (lossless: boolean, quality: number) => void
  encode: () => void
  getEncodedBuffer: () => Uint8Array
  delete: () => void
}

/** Lossless JPEG 2000 of 16-bit samples with OpenJPEG's own encoder (the full build of the codec package). */
export async function encodeJ2KLossless (samples: Int16Array | Uint16Array, width: number, height: number): Promise<Buffer> {
  const openjpeg = await (require('@cornerstonejs/codec-openjpeg/wasmjs') as (o: object) => Promise<{ J2KEncoder: new () => J2KEncoder }>)({ print: () => {}, printErr: () => {} })
  const encoder = new openjpeg.J2KEncoder()
  try {
    encoder.getDecodedBuffer({ width, height, bitsPerSample: 16, componentCount: 1, isSigned: samples instanceof Int16Array, isUsingColorTransform: false })
      .set(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength))
    encoder.setQuality(true, 0)
    encoder.encode()
    return Buffer.from(encoder.getEncodedBuffer())
  } finally {
    encoder.delete()
  }
}

/** PackBits with replicate runs for repeats of 3 or more, literal runs otherwise (PS3.5 G.3.1). */
function packBits (plane: Uint8Array): Buffer {
  const out: number[] = []
  let i = 0
  while (i < plane.length) {
    let run = 1
    while (i + run < plane.length && run < 128 && plane[i + run] === plane[i]) run++
    if (run >= 3) {
      out.push(257 - run, plane[i])
      i += run
      continue
    }
    const start = i
    while (i < plane.length && i - start < 128 && !(i + 2 < plane.length && plane[i] === plane[i + 1] && plane[i] === plane[i + 2])) i++
    out.push(i - start - 1, ...plane.subarray(start, i))
  }
  if (out.length % 2 === 1) out.push(0x80) // segments are padded to even length with a no-op
  return Buffer.from(out)
}

/** DICOM RLE Lossless of one frame of 8- or 16-bit samples (given as the raw stored words). */
export function encodeRle (samples: Uint8Array | Uint16Array | Int16Array): Buffer {
  const bytesPerSample = samples instanceof Uint8Array ? 1 : 2
  const bytes = new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength)
  const segments: Buffer[] = []
  for (let segment = 0; segment < bytesPerSample; segment++) {
    const byteIndex = bytesPerSample - 1 - segment // most significant byte first; the words are little endian
    segments.push(packBits(Uint8Array.from({ length: samples.length }, (_, i) => bytes[i * bytesPerSample + byteIndex])))
  }
  const header = Buffer.alloc(64)
  header.writeUInt32LE(segments.length, 0)
  let offset = 64
  segments.forEach((segment, i) => { header.writeUInt32LE(offset, 4 + i * 4); offset += segment.length })
  return Buffer.concat([header, ...segments])
}
