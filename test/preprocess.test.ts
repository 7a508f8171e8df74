import { join } from 'node:path'
import sharp from 'sharp'
import t from 'tap'
import { decodeCheckedImage, decodeImage, type DecodeOptions } from '../inference/decode.js'
import { readCheckedHeader } from '../inference/image-header.js'
import { sniffFormat } from '../inference/sniff.js'
import { readModelSpec, sidecarPathFor, type ModelSpec } from '../inference/model-spec.js'
import { decodeForModel, resizeForModel } from '../inference/preprocess.js'
import { loadConfig } from '../plugins/app/config.js'
import { CT_KIDNEY, ctKidneyImage, SHARED, spreadFiles } from './helper.js'
import { loadSources } from './hostile/corpus.js'
import { fileCases } from './hostile/image-cases.js'
import { pngWithZtxt } from './hostile/craft.js'

// The service decodes and resizes JPEG/PNG in one libvips pipeline; training export and evaluation decode to
// full size first where they need the full-size image (in-painting, overlays) and resize after. On every image
// they do that for, both must give the model the same bytes. Larger JPEGs are decoded at reduced scale by the
// service (shrink-on-load), and exported and evaluated through the same function.

type Outcome = { pixels: Buffer } | { code: string }

async function outcome (run: () => Promise<Buffer>): Promise<Outcome> {
  try {
    return { pixels: await run() }
  } catch (error) {
    return { code: (error as { code?: string }).code ?? String(error) }
  }
}

async function bothPaths (bytes: Buffer, spec: ModelSpec, options: DecodeOptions): Promise<[Outcome, Outcome]> {
  return [
    await outcome(async () => await decodeForModel(bytes, spec, options)),
    await outcome(async () => await resizeForModel(await decodeImage(bytes, options), spec))
  ]
}

function meanDifference (a: Buffer, b: Buffer): number {
  let sum = 0
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i])
  return sum / a.length
}

/** sharp lets libjpeg shrink on load from three times the model input on one axis (672 px for 224). */
async function mayShrinkOnLoad (bytes: Buffer, spec: ModelSpec): Promise<boolean> {
  if (sniffFormat(bytes) !== 'jpeg') return false
  const { width, height } = await readCheckedHeader(bytes, 'jpeg', Number.MAX_SAFE_INTEGER).catch(() => ({ width: 0, height: 0 }))
  return width >= 3 * spec.input.width || height >= 3 * spec.input.height
}

async function someFiles (dir: string, count: number): Promise<Buffer[]> {
  return (await spreadFiles(dir, count)).map((file) => file.bytes)
}

const config = loadConfig()
const shipped = await readModelSpec(sidecarPathFor(config.modelPath))
const variantsOfSpec: Array<[string, ModelSpec]> = [
  [`the shipped model (${shipped.input.channels} channel, ${shipped.input.resize})`, shipped],
  ['3 channels, letterboxed', { ...shipped, input: { ...shipped.input, channels: 3, resize: 'contain', mean: [0, 0, 0], std: [1, 1, 1] } }]
]

t.test('training and evaluation images: one pipeline gives exactly the pixels of decode-then-resize', async (t) => {
  const sets: Array<[string, Buffer[]]> = [
    ['ct-kidney 384 px greyscale JPEG', [...await someFiles(join(CT_KIDNEY, 'test/normal'), 6), ...await someFiles(join(CT_KIDNEY, 'test/stone'), 6)]],
    ['yildirim coronal RGB JPEG', await someFiles(join(SHARED, 'data/yildirim-stones/images'), 8)]
  ]
  for (const [specName, spec] of variantsOfSpec) {
    const options = { channels: spec.input.channels, maxPixels: config.maxPixels }
    for (const [setName, files] of sets) {
      let identical = 0
      for (const bytes of files) {
        const [fused, twoPass] = await bothPaths(bytes, spec, options)
        if ('pixels' in fused && 'pixels' in twoPass && fused.pixels.equals(twoPass.pixels)) identical++
      }
      t.equal(identical, files.length, `${setName}, ${specName}: ${identical} of ${files.length} byte-identical`)
    }
  }
})

t.test('a 16-bit greyscale PNG widened from 8 bits, decoded once while checked, gives the pixels of decoding the file again', async (t) => {
  // Cut to a landscape picture, so that an orientation shows in its size.
  const { data, info } = await sharp(await ctKidneyImage('test/stone', 0)).greyscale().raw().toBuffer({ resolveWithObject: true })
  const [width, height] = [info.width, info.height - 64]
  const grey = data.subarray(0, width * height)
  const png16 = (samples: Uint16Array, channels: 1 | 2) => sharp(samples, { raw: { width, height, channels } }).toColourspace('grey16').png()
  const pngs: Record<string, Buffer> = {
    grey: await png16(Uint16Array.from(grey, (g) => g * 257), 1).toBuffer(),
    'grey with a partial alpha': await png16(Uint16Array.from({ length: 2 * width * height }, (_, i) => i % 2 === 0 ? grey[i >> 1] * 257 : ((i >> 1) % 7) * 9000), 2).toBuffer(),
    'EXIF orientation 6': await png16(Uint16Array.from(grey, (g) => g * 257), 1).withMetadata({ orientation: 6 }).toBuffer()
  }
  for (const channels of [1, 3] as const) {
    const options = { channels, maxPixels: config.maxPixels }
    for (const [name, png] of Object.entries(pngs)) {
      const once = await decodeImage(png, options)
      const again = await decodeCheckedImage(png, options) // the file decoded by the pipeline JPEG and 8-bit PNG take
      t.same([once.width, once.height, once.channels], [again.width, again.height, again.channels], `${name}, ${channels} channel(s): size`)
      t.ok(once.pixels.equals(again.pixels), `${name}, ${channels} channel(s): byte-identical`)
    }
  }
  const oriented = await decodeImage(pngs['EXIF orientation 6'], { channels: 1, maxPixels: config.maxPixels })
  t.same([oriented.width, oriented.height], [height, width], 'oriented: turned a quarter')
})

t.test('full-size hospital exports: decoded at reduced scale, pixels within 2 grey levels of a full decode on average', async (t) => {
  const originals = [...await someFiles(join(CT_KIDNEY, 'originals/normal'), 20), ...await someFiles(join(CT_KIDNEY, 'originals/stone'), 20)]
  for (const [specName, spec] of variantsOfSpec) {
    const options = { channels: spec.input.channels, maxPixels: config.maxPixels }
    let reduced = 0
    for (const bytes of originals) {
      const served = await decodeForModel(bytes, spec, options)
      const full = await resizeForModel(await decodeImage(bytes, options), spec)
      if (served.equals(full)) continue
      reduced++
      const difference = meanDifference(served, full)
      if (difference > 2) t.fail(`${specName}: mean difference ${difference.toFixed(2)} grey levels`)
    }
    // 29 of the 40 are 787-1236 px wide; the 512x512 ones are below three times the model input.
    t.ok(reduced >= 20, `${specName}: ${reduced} of ${originals.length} decoded at reduced scale`)
  }
})

t.test('every file of the hostile corpus: same pixels (within 2 grey levels where sharp may shrink on load), or the same typed error, on both paths', async (t) => {
  const cases = await fileCases(await loadSources(), config.maxPixels)
  const options = { channels: shipped.input.channels, maxPixels: config.maxPixels }
  const mismatches: string[] = []
  let decoded = 0
  for (const file of cases) {
    const [fused, twoPass] = await bothPaths(file.data, shipped, options)
    const samePixels = async (a: Buffer, b: Buffer): Promise<boolean> =>
      a.equals(b) || (await mayShrinkOnLoad(file.data, shipped) && meanDifference(a, b) <= 2)
    const same = 'pixels' in fused
      ? 'pixels' in twoPass && await samePixels(fused.pixels, twoPass.pixels)
      : 'code' in twoPass && fused.code === twoPass.code
    if (!same) mismatches.push(`${file.name}: ${JSON.stringify('code' in fused ? fused : 'pixels')} vs ${JSON.stringify('code' in twoPass ? twoPass : 'pixels')}`)
    if ('pixels' in fused) decoded++
  }
  t.same(mismatches, [], `${cases.length} files compared`)
  t.ok(decoded >= 20, `the comparison includes decodable variants (${decoded} of ${cases.length}), not only errors`)
})

t.test('nothing of an upload stays in libvips\' operation cache: a PNG\'s text chunks are not bounded by its memory limit', async (t) => {
  // With the cache on, each upload of a PNG of 2,000 zTXt chunks inflating to 7 MB each stayed in it: 2 GB resident per
  // upload. Here 16 such chunks (MAX_PNG_TEXT_CHUNKS); on the old code the decode's operations were still cached afterwards.
  const config = loadConfig()
  const spec = await readModelSpec(sidecarPathFor(config.modelPath))
  const bytes = pngWithZtxt(await sharp(await ctKidneyImage('test/stone')).greyscale().png().toBuffer(), 16, 7_000_000)
  t.equal((await decodeForModel(bytes, spec, { channels: spec.input.channels, maxPixels: config.maxPixels })).length, spec.input.width * spec.input.height * spec.input.channels)
  t.same(sharp.cache(), { memory: { current: 0, high: sharp.cache().memory.high, max: 0 }, files: { current: 0, max: 0 }, items: { current: 0, max: 0 } },
    'old code: items.current above 0, the upload\'s operations and their text kept')
})
