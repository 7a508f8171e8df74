import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { copyFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pLimit from 'p-limit'
import { fileURLToPath } from 'node:url'

const run = promisify(execFile)

const SHARED_DICOM = fileURLToPath(new URL('../../shared/data/dicom/', import.meta.url))

/** The shared real CT slices a series is built from (512x512 and 128x128, explicit VR little endian). */
export const CT_SOURCES = {
  ct1: join(SHARED_DICOM, 'ct1-unc-explicit-little-endian.dcm'),
  small: join(SHARED_DICOM, 'ct-small-pydicom.dcm')
}

export const SOP_CLASS = {
  ct: '1.2.840.10008.5.1.4.1.1.2',
  mr: '1.2.840.10008.5.1.4.1.1.4',
  basicTextSr: '1.2.840.10008.5.1.4.1.1.88.11'
}

/** A new UID under the UUID-derived root 2.25 (PS3.5 B.2): unique without a registered root. */
export function newUid (): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`
}

export interface CtSeries {
  studyInstanceUid: string
  seriesInstanceUid: string
  /** In slice order (InstanceNumber 1, 2, ...). */
  files: string[]
  sopInstanceUids: string[]
  /** Slice position (mm) of each file, in the same order. */
  positions: number[]
}

export interface CtSeriesOptions {
  slices: number
  studyInstanceUid?: string
  /** The slice (0-based) -> which shared file it copies; default: ct1 throughout. */
  source?: (index: number) => string
  spacingMm?: number
  /** Overrides for every file, e.g. { Modality: 'MR', SOPClassUID: SOP_CLASS.mr }. */
  attributes?: Record<string, string>
}

/**
 * Writes a CT series into `dir` (tests and bench/dicom-series.ts) from the shared real CT files: each slice a copy with new Study/Series/SOP Instance
 * UIDs, InstanceNumber, ImagePositionPatient and SliceLocation set by dcmtk's dcmodify (the File Meta Information
 * follows the new SOP Instance UID). Axial slices `spacingMm` apart; callers
 * decide the order they send them in.
 */
export async function writeCtSeries (dir: string, options: CtSeriesOptions): Promise<CtSeries> {
  await mkdir(dir, { recursive: true })
  const studyInstanceUid = options.studyInstanceUid ?? newUid()
  const seriesInstanceUid = newUid()
  const spacing = options.spacingMm ?? 2.5
  const limit = pLimit(4)
  const slices = await Promise.all(Array.from({ length: options.slices }, async (_, i) => await limit(async () => {
    const file = join(dir, `slice-${String(i + 1).padStart(4, '0')}.dcm`)
    const sopInstanceUid = newUid()
    const z = -200 + i * spacing
    await copyFile(options.source?.(i) ?? CT_SOURCES.ct1, file)
    const attributes: Record<string, string> = {
      StudyInstanceUID: studyInstanceUid,
      SeriesInstanceUID: seriesInstanceUid,
      SOPInstanceUID: sopInstanceUid,
      InstanceNumber: String(i + 1),
      ImagePositionPatient: `-158.1\\-179.0\\${z.toFixed(2)}`,
      ImageOrientationPatient: '1\\0\\0\\0\\1\\0',
      SliceLocation: z.toFixed(2),
      ...options.attributes
    }
    await run('dcmodify', ['-nb', ...Object.entries(attributes).flatMap(([name, value]) => ['-i', `${name}=${value}`]), file])
    return { file, sopInstanceUid, z }
  })))
  return {
    studyInstanceUid,
    seriesInstanceUid,
    files: slices.map((s) => s.file),
    sopInstanceUids: slices.map((s) => s.sopInstanceUid),
    positions: slices.map((s) => s.z)
  }
}
