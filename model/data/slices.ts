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

/** Reads a dataset's `manifest.csv` (no field contains a comma); ct-kidney-other has no plane column: all axial. */
export async function readSliceManifest (dataset: SliceDataset): Promise<SliceEntry[]> {
  const lines = (await readFile(path.join(DATASET_DIRS[dataset], 'manifest.csv'), 'utf8')).trim().split(/\r?\n/)
  const header = lines[0].split(',')
  const column = (name: string): number => {
    const index = header.indexOf(name)
    if (index < 0) throw new Error(`${dataset} manifest has no column ${name}`)
    return index
  }
  const [pathColumn, labelColumn, splitColumn, groupColumn] = ['path', 'label', 'split', 'group'].map(column)
  const planeColumn = header.indexOf('plane')
  return lines.slice(1).map((line) => {
    const cells = line.split(',')
    const finding = cells[labelColumn] as Finding
    return {
      dataset,
      path: cells[pathColumn],
      label: finding === 'stone' ? 1 : 0,
      finding,
      split: cells[splitColumn] as Split,
      group: cells[groupColumn],
      plane: (planeColumn < 0 ? 'axial' : cells[planeColumn]) as SliceEntry['plane']
    }
  })
}

export async function readAllSlices (): Promise<SliceEntry[]> {
  return [...await readSliceManifest('ct-kidney'), ...await readSliceManifest('ct-kidney-other')]
}

export const PROTOCOL_FILE = new URL('../training/series-protocol.csv', import.meta.url).pathname

/** Series -> protocol, as recorded in model/training/series-protocol.csv (written by model/training/protocol.ts). */
export async function readSeriesProtocols (file: string = PROTOCOL_FILE): Promise<Map<string, Protocol>> {
  const lines = (await readFile(file, 'utf8')).trim().split(/\r?\n/)
  const header = lines[0].split(',')
  const series = header.indexOf('series')
  const protocol = header.indexOf('protocol')
  return new Map(lines.slice(1).map((line) => {
    const cells = line.split(',')
    return [cells[series], cells[protocol] as Protocol]
  }))
}
