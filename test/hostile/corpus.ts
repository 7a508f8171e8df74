import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import { dicomFileCases } from './dicom-cases.js'
import { fileCases } from './image-cases.js'
import { encodeMultipart, multipartRequest, requestCases, type RequestLimits } from './request-cases.js'
import type { FileCase, HostileCase, Outcome, Sources } from './types.js'

export type { Category, HostileCase, HostileRequest, Outcome } from './types.js'

export const CT_KIDNEY_DIR = new URL('../../../shared/data/ct-kidney/', import.meta.url).pathname

export interface CorpusLimits extends RequestLimits {
  maxPixels: number
}

async function firstFiles (dataDir: string, folder: string, count: number): Promise<Buffer[]> {
  const dir = join(dataDir, folder)
  const names = (await readdir(dir)).filter((name) => name.endsWith('.jpg')).sort().slice(0, count)
  if (names.length < count) throw new Error(`${dir}: expected at least ${count} JPEG files`)
  return await Promise.all(names.map(async (name) => await readFile(join(dir, name))))
}

/** Two stone and one normal 384 px slice, one stone and one normal untouched original (full-size RGB). */
export async function loadSources (dataDir = CT_KIDNEY_DIR): Promise<Sources> {
  const [stone, normal, originalStone, originalNormal] = await Promise.all([
    firstFiles(dataDir, 'test/stone', 2), firstFiles(dataDir, 'test/normal', 1),
    firstFiles(dataDir, 'originals/stone', 1), firstFiles(dataDir, 'originals/normal', 1)
  ])
  return { slices: [...stone, ...normal], originals: [...originalStone, ...originalNormal] }
}

function asRequest (file: FileCase): HostileCase {
  const part = { name: 'file', filename: file.filename ?? 'slice.jpg', contentType: file.contentType ?? 'image/jpeg', data: file.data }
  return { category: file.category, name: file.name, expected: file.expected, request: multipartRequest(encodeMultipart([part])) }
}

/**
 * The hostile-input corpus for POST /predict, built at run time from real ct-kidney slices (nothing binary is
 * committed). `limits` must be the limits of the server under test: they decide which answer is right.
 */
export async function buildHostileCorpus (limits: CorpusLimits, dataDir = CT_KIDNEY_DIR): Promise<HostileCase[]> {
  const sources = await loadSources(dataDir)
  const [jpeg] = sources.slices
  const png = await sharp(jpeg).png().toBuffer()
  const { files, requests } = requestCases(jpeg, png, limits)
  const cases = [...(await fileCases(sources, limits.maxPixels)), ...(await dicomFileCases(limits.maxPixels)), ...files].map(asRequest)
  cases.push(...requests)
  const duplicates = cases.map((c) => c.name).filter((name, i, all) => all.indexOf(name) !== i)
  if (duplicates.length > 0) throw new Error(`hostile corpus: duplicate case names: ${duplicates.join(', ')}`)
  return cases
}

/** Whether an answer is one the case allows: the status, and for errors the typed body's code. */
export function isExpected (expected: Outcome[], status: number, body: unknown): boolean {
  const code = typeof body === 'object' && body !== null ? (body as { code?: unknown }).code : undefined
  return expected.some((outcome) => outcome.status === status && (outcome.code === undefined || outcome.code === code))
}

/** Whether the case can be answered 200 (and so may store an upload). */
export function mayBeAccepted (expected: Outcome[]): boolean {
  return expected.some((outcome) => outcome.status === 200)
}
