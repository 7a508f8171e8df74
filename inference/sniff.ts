/**
 * First step of an upload's path: what the bytes are. Decided by magic bytes only: a client's file name or
 * Content-Type is never trusted.
 */
export type ImageFormat = 'jpeg' | 'png' | 'dicom'

export const FILE_EXTENSIONS: Record<ImageFormat, string> = { jpeg: 'jpg', png: 'png', dicom: 'dcm' }

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

export function sniffFormat (bytes: Buffer): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg'
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png'
  if (bytes.length >= 132 && bytes.toString('latin1', 128, 132) === 'DICM') return 'dicom'
  return undefined
}
