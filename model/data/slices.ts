import { readFile } from 'node:fs/promises'
import path from 'node:path'

/**
 * The two kidney CT slice datasets of `../shared` (ct-kidney: Normal / Stone; ct-kidney-other: Cyst / Tumour, all
 * Normal for the service) read into one entry type, and the per-series protocol labels of
 * model/training/series-protocol.csv. Training export, evaluation and the protocol check read them here.
 */

export const SHARED_DIR = path.resolve(process.env.SHARED_DIR ?? '../shared')

export type SliceDataset = 'ct-kidney' | 'ct-kidney-other'
export type Split = 'train' | 'val' | 'test'
export type Finding = 'normal' | 'stone' | 'cyst' | 'tumor'
export type Protocol = 'contrast' | 'non-contrast'

/** Where each dataset lives (override with CT_KIDNEY_DIR / CT_KIDNEY_OTHER_DIR). */
export const DATASET_DIRS: Record<SliceDataset, string> = {
  'ct-kidney': path.resolve(process.env.CT_KIDNEY_DIR ?? path.join(SHARED_DIR, 'data/ct-kidney')),
  'ct-kidney-other': path.resolve(process.env.CT_KIDNEY_OTHER_DIR ?? path.join(SHARED_DIR, 'data/ct-kidney-other'))
}

export interface SliceEntry {
  dataset: SliceDataset
  /** Relative to the dataset's folder. */
  path: string
  /** Service label: 1 = Stone; cysts and tumours are 0 (no stone). */
  label: 0 | 1
  finding: Finding
  split: Split
  /** The patient series: unit of splits, bootstrap and per-series figures. */
  group: string
  plane: 'axial' | 'coronal'
}

export function sliceFile (entry: SliceEntry): string {
  return path.join(DATASET_DIRS[entry.dataset], entry.path)
}

/** The rows of a small comma-separated file with a header line (no field contains a comma), keyed by column name. */
async function readCsv (file: string, required: readonly string[]): Promise<Array<Record<string, string>>> {
  const [header, ...lines] = (await readFile(file, 'utf8')).trim().split(/\r?\n/).map((line) => line.split(','))
  const missing = required.find((name) => !header.includes(name))
  if (missing !== undefined) throw new Error(`${file} has no column ${missing}`)
  return lines.map((cells) => Object.fromEntries(header.map((name, i) => [name, cells[i]])))
}

/** Reads a dataset's `manifest.csv`; ct-kidney-other has no plane column: all axial. */
export async function readSliceManifest (dataset: SliceDataset): Promise<SliceEntry[]> {
  const rows = await readCsv(path.join(DATASET_DIRS[dataset], 'manifest.csv'), ['path', 'label', 'split', 'group'])
  return rows.map((row) => {
    const finding = row.label as Finding
    return {
      dataset,
      path: row.path,
      label: finding === 'stone' ? 1 : 0,
      finding,
      split: row.split as Split,
      group: row.group,
      plane: (row.plane ?? 'axial') as SliceEntry['plane']
    }
  })
}

export async function readAllSlices (): Promise<SliceEntry[]> {
  return [...await readSliceManifest('ct-kidney'), ...await readSliceManifest('ct-kidney-other')]
}

export const PROTOCOL_FILE = new URL('../training/series-protocol.csv', import.meta.url).pathname

/** Series -> protocol, as recorded in model/training/series-protocol.csv (written by model/training/protocol.ts). */
export async function readSeriesProtocols (file: string = PROTOCOL_FILE): Promise<Map<string, Protocol>> {
  const rows = await readCsv(file, ['series', 'protocol'])
  return new Map(rows.map((row) => [row.series, row.protocol as Protocol]))
}
