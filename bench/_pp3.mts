import sharp from 'sharp'
import { readFileSync, readdirSync } from 'node:fs'
const sets: Record<string, string[]> = {
  originals: readdirSync('../shared/data/ct-kidney/originals/', { recursive: true }).map(String).filter(f => /\.jpe?g$/i.test(f)).map(f => '../shared/data/ct-kidney/originals/' + f),
  yildirim: readdirSync('../shared/data/yildirim-stones/images/').slice(0, 40).map(f => '../shared/data/yildirim-stones/images/' + f),
  ct384: readdirSync('../shared/data/ct-kidney/test/normal/').slice(0, 40).map(f => '../shared/data/ct-kidney/test/normal/' + f)
}
async function two (b: Buffer) {
  const { data, info } = await sharp(b, { failOn: 'truncated', autoOrient: true }).flatten({ background: '#000000' }).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true })
  return await sharp(data, { raw: { width: info.width, height: info.height, channels: 1 } }).resize(224, 224, { fit: 'fill' }).removeAlpha().toColourspace('b-w').raw().toBuffer()
}
async function fused (b: Buffer, variant: string) {
  const m = await sharp(b).metadata()
  let p = sharp(b, { failOn: 'truncated', autoOrient: true }).flatten({ background: '#000000' })
  if (variant.includes('grey')) p = p.greyscale()
  if (variant.includes('extract')) p = p.extract({ left: 0, top: 0, width: m.autoOrient?.width ?? m.width!, height: m.autoOrient?.height ?? m.height! })
  return await p.resize(224, 224, { fit: 'fill', fastShrinkOnLoad: false }).removeAlpha().toColourspace('b-w').raw().toBuffer()
}
for (const [name, files] of Object.entries(sets)) {
  const bufs = files.map(f => readFileSync(f))
  const m = await sharp(bufs[0]).metadata(); console.log(name, bufs.length, m.width, m.height, m.channels, m.format)
  for (const variant of ['plain', 'grey', 'grey+extract', 'extract']) {
    let maxd = 0, ndiff = 0
    for (const b of bufs) { const a = await two(b), c = await fused(b, variant); if (a.length !== c.length) throw new Error('len'); for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i] - c[i]); if (d) ndiff++; if (d > maxd) maxd = d } }
    console.log('  ', variant, 'max diff', maxd, 'differing', ndiff)
  }
}
