import { join } from 'node:path'
import t from 'tap'
import { decodeImage, type DecodeOptions } from '../inference/decode.js'
import { readModelSpec, sidecarPathFor, type ModelSpec } from '../inference/model-spec.js'
import { decodeForModel, resizeForModel } from '../inference/preprocess.js'
import { loadConfig } from '../plugins/app/config.js'
import { CT_KIDNEY, SHARED, spreadFiles } from './helper.js'
import { loadSources } from './hostile/corpus.js'
import { fileCases } from './hostile/image-cases.js'

// The service decodes and resizes JPEG/PNG in one libvips pipeline; training export and evaluation decode to
// full size first (in-painting, overlays) and resize after. Both must give the model the same bytes.

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

async function someFiles (dir: string, count: number): Promise<Buffer[]> {
  return (await spreadFiles(dir, count)).map((file) => file.bytes)
}

const config = loadConfig()
const shipped = await readModelSpec(sidecarPathFor(config.modelPath))
const variantsOfSpec: Array<[string, ModelSpec]> = [
  ['the shipped model (1 channel, fill)', shipped],
  ['3 channels, letterboxed', { ...shipped, input: { ...shipped.input, channels: 3, resize: 'contain', mean: [0, 0, 0], std: [1, 1, 1] } }]
]

t.test('real images: one pipeline gives exactly the pixels of decode-then-resize', async (t) => {
  const sets: Array<[string, Buffer[]]> = [
    ['ct-kidney 384 px greyscale JPEG', [...await someFiles(join(CT_KIDNEY, 'test/normal'), 6), ...await someFiles(join(CT_KIDNEY, 'test/stone'), 6)]],
    ['ct-kidney full-size RGB originals (JPEG shrink-on-load territory)', [
      ...await someFiles(join(CT_KIDNEY, 'originals/normal'), 8), ...await someFiles(join(CT_KIDNEY, 'originals/stone'), 8)]],
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

t.test('every file of the hostile corpus: same pixels, or the same typed error, on both paths', async (t) => {
  const cases = await fileCases(await loadSources(), config.maxPixels)
  const options = { channels: shipped.input.channels, maxPixels: config.maxPixels }
  const mismatches: string[] = []
  let decoded = 0
  for (const file of cases) {
    const [fused, twoPass] = await bothPaths(file.data, shipped, options)
    const same = 'pixels' in fused
      ? 'pixels' in twoPass && fused.pixels.equals(twoPass.pixels)
      : 'code' in twoPass && fused.code === twoPass.code
    if (!same) mismatches.push(`${file.name}: ${JSON.stringify('code' in fused ? fused : 'pixels')} vs ${JSON.stringify('code' in twoPass ? twoPass : 'pixels')}`)
    if ('pixels' in fused) decoded++
  }
  t.same(mismatches, [], `${cases.length} files compared`)
  t.ok(decoded >= 20, `the comparison includes decodable variants (${decoded} of ${cases.length}), not only errors`)
})
