import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const CT_KIDNEY = fileURLToPath(new URL('../../shared/data/ct-kidney/', import.meta.url))

export interface ImageSet {
  name: string
  description: string
  files: string[]
  bytes: Buffer[]
}

async function firstFiles (folder: string, count: number): Promise<string[]> {
  const names = (await readdir(join(CT_KIDNEY, folder))).filter((name) => name.endsWith('.jpg')).sort()
  const step = Math.max(1, Math.floor(names.length / count))
  return names.filter((_, i) => i % step === 0).slice(0, count).map((name) => join(CT_KIDNEY, folder, name))
}

async function imageSet (name: string, description: string, folders: string[], perFolder: number): Promise<ImageSet> {
  const files = (await Promise.all(folders.map(async (folder) => await firstFiles(folder, perFolder)))).flat()
  return { name, description, files, bytes: await Promise.all(files.map(async (file) => await readFile(file))) }
}

/**
 * The real images every part of the benchmark uses: 40 ct-kidney test slices as distributed here (greyscale
 * JPEG, longest side 384 px; Normal and Stone spread over the split) and the 40 untouched full-size originals
 * (RGB JPEG, 512x512 and larger, as a hospital export looks).
 */
export async function benchImageSets (): Promise<ImageSet[]> {
  return [
    await imageSet('384px', 'ct-kidney test split, 384 px greyscale JPEG', ['test/normal', 'test/stone'], 20),
    await imageSet('originals', 'ct-kidney originals/, full-size RGB JPEG', ['originals/normal', 'originals/stone'], 20)
  ]
}
