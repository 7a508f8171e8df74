import type { ConnectedRegion } from './connected-regions.js'

/**
 * The regions of an evidence map above `level`, one per evidence spot: the 4-connected regions above the level,
 * split further where two local peaks are joined only through a saddle deeper than `depth` below the lower of the
 * two (an h-maxima watershed, by flooding from the top down).
 *
 * Pixels at or above the level are visited from the highest down (ties in row-major order, so the result is
 * deterministic). A pixel with no visited neighbour starts a spot whose peak is its value; a pixel touching one
 * spot joins it; a pixel touching several is a saddle: it joins the spot with the highest peak, and every other
 * spot whose peak stands no more than `depth` above the saddle is merged into that one (a bump on the way up, not
 * a spot of its own), while a spot standing higher stays separate for good (later saddles are lower still).
 * With `depth` at least `peak - level` no spot ever stays separate and the regions are the plain connected regions
 * above the level (inference/connected-regions.ts).
 *
 * Cost: a sort of the pixels above the level and a near-linear union-find, on 224x224 pixels.
 */
export function evidenceRegions (values: Float32Array, width: number, height: number, level: number, depth: number): ConnectedRegion[] {
  const above: number[] = []
  for (let i = 0; i < values.length; i++) if (values[i] >= level) above.push(i)
  above.sort((a, b) => values[b] - values[a] || a - b)

  // spot of each visited pixel (-1: not visited); spots form a union-find forest, `parent` pointing to the survivor
  const spotOf = new Int32Array(width * height).fill(-1)
  const parent: number[] = []
  const peak: number[] = []
  const find = (spot: number): number => {
    let root = spot
    while (parent[root] !== root) root = parent[root]
    while (parent[spot] !== root) {
      const next = parent[spot]
      parent[spot] = root
      spot = next
    }
    return root
  }

  for (const i of above) {
    const x = i % width
    const y = (i - x) / width
    const touched: number[] = []
    for (const next of [x > 0 ? i - 1 : -1, x < width - 1 ? i + 1 : -1, y > 0 ? i - width : -1, y < height - 1 ? i + width : -1]) {
      if (next < 0 || spotOf[next] < 0) continue
      const spot = find(spotOf[next])
      if (!touched.includes(spot)) touched.push(spot)
    }
    if (touched.length === 0) {
      spotOf[i] = parent.length
      parent.push(parent.length)
      peak.push(values[i])
      continue
    }
    touched.sort((a, b) => peak[b] - peak[a] || a - b)
    const [highest, ...others] = touched
    spotOf[i] = highest
    for (const spot of others) if (peak[spot] - values[i] <= depth) parent[spot] = highest
  }

  const regions = new Map<number, ConnectedRegion>()
  for (let i = 0; i < spotOf.length; i++) {
    if (spotOf[i] < 0) continue
    const spot = find(spotOf[i])
    const x = i % width
    const y = (i - x) / width
    const region = regions.get(spot)
    if (region === undefined) {
      regions.set(spot, { cells: [i], x, y, width: 1, height: 1 })
      continue
    }
    region.cells.push(i)
    const x1 = Math.max(region.x + region.width, x + 1)
    region.x = Math.min(region.x, x)
    region.width = x1 - region.x
    region.height = y - region.y + 1
  }
  return [...regions.values()]
}
