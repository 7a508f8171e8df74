import { join } from 'node:path'
import sharp from 'sharp'
import t from 'tap'
import { sniffFormat } from '../inference/sniff.js'
import { readPlainImageSize } from '../inference/image-header.js'
import { readModelSpec, sidecarPathFor } from '../inference/model-spec.js'
import { decodeForModel } from '../inference/preprocess.js'
import { loadConfig } from '../plugins/app/config.js'
import { CT_KIDNEY, SHARED, spreadFiles } from './helper.js'
import { loadSources } from './hostile/corpus.js'
import { fileCases } from './hostile/image-cases.js'

// The JavaScript header reader only has to be right about the files it accepts: for each of them libvips must
// report the same oriented size, 8-bit samples and grey or sRGB, or, where libvips cannot read the header at all
// (it refused such files before any pixel, as corrupt), decoding must still refuse them with a typed 422.
// Everything else must be left to libvips.

interface Verdict { accepted: boolean, mismatch?: string }

const config = loadConfig()
const spec = await readModelSpec(sidecarPathFor(config.modelPath))

async function refusal (bytes: Buffer): Promise<string> {
  return await decodeForModel(bytes, spec, { channels: spec.input.channels, maxPixels: config.maxPixels })
    .then(() => 'decoded', (error: { code?: string }) => error.code ?? String(error))
}

async function judge (name: string, bytes: Buffer): Promise<Verdict> {
  const format = sniffFormat(bytes)
  if (format !== 'jpeg' && format !== 'png') return { accepted: false }
  const size = readPlainImageSize(bytes, format)
  if (size === undefined) return { accepted: false }
  const header = await sharp(bytes, { limitInputPixels: false }).metadata().catch(() => undefined)
  if (header === undefined) {
    const outcome = await refusal(bytes)
    return { accepted: true, mismatch: ['CORRUPT_IMAGE', 'IMAGE_TOO_LARGE'].includes(outcome) ? undefined : `${name}: libvips reads no header, decoding gave ${outcome}` }
  }
  const libvips = `${header.format} ${header.autoOrient.width}x${header.autoOrient.height} ${header.depth} ${header.space} orientation ${header.orientation ?? 1}`
  const expected = `${format} ${size.width}x${size.height} uchar ${header.space === 'b-w' ? 'b-w' : 'srgb'} orientation 1`
  return { accepted: true, mismatch: libvips === expected ? undefined : `${name}: read ${expected}, libvips ${libvips}` }
}

t.test('real CT exports: every file is read in JavaScript, exactly as libvips reads it', async (t) => {
  const sets: Array<[string, Array<{ name: string, bytes: Buffer }>]> = [
    ['ct-kidney 384 px', [...await spreadFiles(join(CT_KIDNEY, 'train/normal'), 20), ...await spreadFiles(join(CT_KIDNEY, 'test/stone'), 20)]],
    ['ct-kidney originals', [...await spreadFiles(join(CT_KIDNEY, 'originals/normal'), 20), ...await spreadFiles(join(CT_KIDNEY, 'originals/stone'), 20)]],
    ['yildirim coronal', await spreadFiles(join(SHARED, 'data/yildirim-stones/images'), 20)]
  ]
  for (const [setName, files] of sets) {
    const verdicts = await Promise.all(files.map(async ({ name, bytes }) => await judge(name, bytes)))
    t.same(verdicts.flatMap((v) => v.mismatch ?? []), [], `${setName}: no disagreement with libvips`)
    t.equal(verdicts.filter((v) => v.accepted).length, files.length, `${setName}: all ${files.length} read without libvips`)
  }
})

t.test('hostile corpus: no accepted file disagrees with libvips; unusual files are left to libvips', async (t) => {
  const cases = await fileCases(await loadSources(), config.maxPixels)
  const verdicts = new Map<string, Verdict>()
  for (const file of cases) verdicts.set(file.name, await judge(file.name, file.data))
  t.same([...verdicts.values()].flatMap((v) => v.mismatch ?? []), [], `${cases.length} files`)
  const accepted = (name: string): boolean | undefined => verdicts.get(name)?.accepted
  for (const name of ['progressive JPEG', '4:4:4 RGB JPEG', 'mozjpeg-optimised JPEG', '1x1 JPEG', 'RGBA PNG with half-transparent alpha',
    'greyscale + alpha PNG', 'interlaced (Adam7) PNG', '1x1 PNG', 'JPEG + appended ZIP', 'PNG + appended JPEG']) {
    t.equal(accepted(name), true, `read in JavaScript: ${name}`)
  }
  for (const name of ['CMYK JPEG', 'EXIF-rotated JPEG (orientation 6)', '16-bit greyscale PNG', '16-bit RGB PNG', 'palette PNG', '1-bit palette PNG']) {
    t.equal(accepted(name), false, `left to libvips: ${name}`)
  }
})

t.test('an EXIF segment anywhere before the first scan, or an eXIf chunk anywhere, leaves the file to libvips', async (t) => {
  const [slice] = (await loadSources()).slices
  const exif = Buffer.concat([Buffer.from([0xff, 0xe1, 0x00, 0x10]), Buffer.from('Exif\0\0', 'latin1'), Buffer.alloc(8)])
  const sos = slice.indexOf(Buffer.from([0xff, 0xda]))
  t.ok(readPlainImageSize(slice, 'jpeg'), 'the slice itself is plain')
  t.equal(readPlainImageSize(Buffer.concat([slice.subarray(0, sos), exif, slice.subarray(sos)]), 'jpeg'), undefined, 'EXIF after the frame header')
  const png = await sharp(slice).png().toBuffer()
  const iend = png.length - 12
  const chunk = Buffer.concat([Buffer.from([0, 0, 0, 4]), Buffer.from('eXIf', 'latin1'), Buffer.alloc(8)])
  t.ok(readPlainImageSize(png, 'png'), 'the PNG itself is plain')
  t.equal(readPlainImageSize(Buffer.concat([png.subarray(0, iend), chunk, png.subarray(iend)]), 'png'), undefined, 'eXIf after the image data')
})
