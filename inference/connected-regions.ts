/** A 4-connected region of a binary grid: its cells (row-major indices) and bounding box in cell units. */
export interface ConnectedRegion {
  cells: number[]
  x: number
  y: number
  width: number
  height: number
}

/**
 * The 4-connected regions of the cells where `inside(index)` holds on a width x height grid, in the order of
 * their first cell (row-major scan). Used for the findings of an activation map and for finding bone on a slice.
 */
export function connectedRegions (width: number, height: number, inside: (index: number) => boolean): ConnectedRegion[] {
  const seen = new Uint8Array(width * height)
  const regions: ConnectedRegion[] = []
  const stack: number[] = []
  for (let start = 0; start < width * height; start++) {
    if (seen[start] === 1 || !inside(start)) continue
    seen[start] = 1
    stack.push(start)
    const cells: number[] = []
    let x0 = width
    let y0 = height
    let x1 = -1
    let y1 = -1
    while (stack.length > 0) {
      const cell = stack.pop() as number
      cells.push(cell)
      const x = cell % width
      const y = (cell - x) / width
      x0 = Math.min(x0, x)
      x1 = Math.max(x1, x)
      y0 = Math.min(y0, y)
      y1 = Math.max(y1, y)
      const neighbours = [x > 0 ? cell - 1 : -1, x < width - 1 ? cell + 1 : -1, y > 0 ? cell - width : -1, y < height - 1 ? cell + width : -1]
      for (const next of neighbours) {
        if (next >= 0 && seen[next] === 0 && inside(next)) {
          seen[next] = 1
          stack.push(next)
        }
      }
    }
    regions.push({ cells, x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 })
  }
  return regions
}
