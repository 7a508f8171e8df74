/**
 * viridis (matplotlib's default map, by van der Walt and Smith): perceptually uniform and monotone in luminance, so
 * a heatmap reads the same in colour, in greyscale print and for colour-blind readers (dark = weak, bright = strong).
 * Eleven stops at 0, 0.1, ..., 1 of the published map, linearly interpolated.
 */
const VIRIDIS_STOPS = [
  [0x44, 0x01, 0x54], [0x48, 0x24, 0x75], [0x41, 0x44, 0x87], [0x35, 0x5f, 0x8d], [0x2a, 0x78, 0x8e], [0x21, 0x91, 0x8c],
  [0x22, 0xa8, 0x84], [0x44, 0xbf, 0x70], [0x7a, 0xd1, 0x51], [0xbd, 0xdf, 0x26], [0xfd, 0xe7, 0x25]
] as const

/** 256 entries of [r, g, b]: `VIRIDIS[Math.round(v * 255)]` for v in 0..1. */
export const VIRIDIS: ReadonlyArray<readonly [number, number, number]> = Array.from({ length: 256 }, (_, i) => {
  const position = i / 255 * (VIRIDIS_STOPS.length - 1)
  const low = Math.min(VIRIDIS_STOPS.length - 2, Math.floor(position))
  const weight = position - low
  const [a, b] = [VIRIDIS_STOPS[low], VIRIDIS_STOPS[low + 1]]
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * weight)) as unknown as readonly [number, number, number]
})

/** Relative luminance (ITU-R BT.709 weights on sRGB values): what a greyscale printer keeps of a colour. */
export function luminance ([r, g, b]: readonly [number, number, number]): number {
  return 0.2126 * r + 0.7152 * g + 0.0722 * b
}
