import { readFile } from 'node:fs/promises'
import path from 'node:path'

/** Where `../shared/data/yildirim-stones` lives when run from the repo root (override with YILDIRIM_DIR). */
export const YILDIRIM_DIR = process.env.YILDIRIM_DIR ?? path.resolve('../shared/data/yildirim-stones')

export type Split = 'train' | 'val' | 'test'

/** A stone box in pixel coordinates of the image it was read for (top-left corner plus size). */
export interface PixelBox {
  x: number
  y: number
  width: number
  height: number
}

export interface YildirimEntry {
  /** Path relative to the yildirim folder, e.g. `images/<ticks>-<id>.jpg`. */
  image: string
  labels: string
  group: string
  split: Split
  stones: number
}

/**
 * The project's fixed yildirim split (same rule in Python): group `yNNN`, n % 5 == 0 is test (held out),
 * n % 5 == 1 is val (calibration, threshold, model selection), the rest is train.
 */
export function yildirimSplit (group: string): Split {
  const n = Number.parseInt(group.slice(1), 10)
  if (!/^y\d+$/.test(group) || Number.isNaN(n)) throw new Error(`not a yildirim group: ${group}`)
  if (n % 5 === 0) return 'test'
  if (n % 5 === 1) return 'val'
  return 'train'
}

/** Reads `manifest.csv` (image,labels,group,stones,source_name); file names contain no commas. */
export async function readYildirimManifest (dir: string = YILDIRIM_DIR): Promise<YildirimEntry[]> {
  const lines = (await readFile(path.join(dir, 'manifest.csv'), 'utf8')).trim().split(/\r?\n/)
  const header = lines[0].split(',')
  const col = (name: string): number => {
    const i = header.indexOf(name)
    if (i < 0) throw new Error(`yildirim manifest has no column ${name}`)
    return i
  }
  const [image, labels, group, stones] = ['image', 'labels', 'group', 'stones'].map(col)
  return lines.slice(1).map((line) => {
    const cells = line.split(',')
    return {
      image: cells[image],
      labels: cells[labels],
      group: cells[group],
      split: yildirimSplit(cells[group]),
      stones: Number(cells[stones])
    }
  })
}

/** Parses YOLO lines (`class xc yc w h`, relative) into pixel boxes for an image of the given size. */
export function parseYoloBoxes (text: string, width: number, height: number): PixelBox[] {
  return text.split(/\r?\n/).filter((line) => line.trim() !== '').map((line) => {
    const [, xc, yc, w, h] = line.trim().split(/\s+/).map(Number)
    if ([xc, yc, w, h].some((v) => v === undefined || !Number.isFinite(v))) {
      throw new Error(`bad YOLO line: ${line}`)
    }
    return { x: (xc - w / 2) * width, y: (yc - h / 2) * height, width: w * width, height: h * height }
  })
}

export async function readYoloBoxes (labelsPath: string, width: number, height: number): Promise<PixelBox[]> {
  return parseYoloBoxes(await readFile(labelsPath, 'utf8'), width, height)
}
