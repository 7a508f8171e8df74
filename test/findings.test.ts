import sharp from 'sharp'
import { test } from 'tap'
import { evidenceMap, findingsOf, MAX_FINDINGS, type EvidenceMap } from '../inference/findings.js'
import { letterboxOf, toModelBox, toOriginalBox } from '../inference/letterbox.js'
import type { ModelSpec } from '../inference/model-spec.js'

const INPUT: ModelSpec['input'] = {
  width: 224, height: 224, channels: 1, layout: 'NHWC', resize: 'contain', scale: 1 / 255, mean: [0], std: [1]
}
const STONE = { isStone: true, input: INPUT, temperature: 1 }

/** A 14x14 map (the network's 16-pixel cells) of background -2 with the given cells raised. */
function map (raised: Array<[x: number, y: number, value: number]>): EvidenceMap {
  const values = new Float32Array(14 * 14).fill(-2)
  for (const [x, y, value] of raised) values[y * 14 + x] = value
  return { values, width: 14, height: 14 }
}

function contains (box: { x: number, y: number, width: number, height: number }, x: number, y: number): boolean {
  return x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height
}

test('letterboxOf matches where sharp puts the image inside the model input', async (t) => {
  for (const [width, height] of [[391, 320], [384, 311], [100, 37], [300, 1000], [512, 512]]) {
    const letterbox = letterboxOf({ width, height }, INPUT)
    const pixels = await sharp({ create: { width, height, channels: 3, background: '#fff' } })
      .resize(224, 224, { fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 1 } }).removeAlpha().toColourspace('b-w').raw().toBuffer()
    const lit = { x0: 224, y0: 224, x1: -1, y1: -1 }
    for (let y = 0; y < 224; y++) {
      for (let x = 0; x < 224; x++) {
        if (pixels[y * 224 + x] < 128) continue
        lit.x0 = Math.min(lit.x0, x); lit.y0 = Math.min(lit.y0, y); lit.x1 = Math.max(lit.x1, x); lit.y1 = Math.max(lit.y1, y)
      }
    }
    const content = toModelBox({ x: 0, y: 0, width, height }, letterbox)
    t.same([content.x, content.y, content.x + content.width - 1, content.y + content.height - 1].map((v) => Math.round(v * 1e6) / 1e6), [lit.x0, lit.y0, lit.x1, lit.y1],
      `${width}x${height}: content box`)
  }
})

test('toOriginalBox undoes toModelBox and clips the padding away', async (t) => {
  const original = { width: 391, height: 320 }
  const letterbox = letterboxOf(original, INPUT)
  const box = { x: 100, y: 50, width: 30, height: 20 }
  const back = toOriginalBox(toModelBox(box, letterbox), letterbox, original)
  for (const key of ['x', 'y', 'width', 'height'] as const) t.ok(Math.abs(back[key] - box[key]) < 1e-9, key)
  // a box over the top padding band (rows 0-19 of the model input) keeps only the part on the image
  t.same(toOriginalBox({ x: 0, y: 0, width: 224, height: 10 }, letterbox, original).height, 0)
})

test('a Normal answer has no findings, whatever the map', async (t) => {
  t.same(findingsOf(map([[3, 4, 9]]), { ...STONE, isStone: false, original: { width: 512, height: 512 } }), [])
})

test('a flat map has no findings (no region stands out)', async (t) => {
  t.same(findingsOf(map([]), { ...STONE, original: { width: 512, height: 512 } }), [])
})

test('one raised cell gives one box around that cell, in uploaded-image pixels', async (t) => {
  // cell (3, 10) of a 14x14 map covers model pixels 48-63 x 160-175; a 512x512 upload maps 224 -> 512
  const found = findingsOf(map([[3, 10, 4]]), { ...STONE, original: { width: 512, height: 512 } })
  t.equal(found.length, 1)
  const [{ box, score }] = found
  t.ok(contains(box, 55.5 * 512 / 224, 167.5 * 512 / 224), 'the box holds the cell centre')
  t.ok(box.width < 2 * 16 * 512 / 224 && box.height < 2 * 16 * 512 / 224, `the box stays within about one cell each side (${box.width}x${box.height})`)
  for (const value of [box.x, box.y, box.width, box.height]) t.ok(Number.isInteger(value), 'whole pixels')
  t.ok(Math.abs(score - 1 / (1 + Math.exp(-4))) < 1e-6, `score is sigmoid(peak / T) (${score})`)
})

test('regions come ranked by peak, at most three, separate regions separate boxes', async (t) => {
  const found = findingsOf(map([[1, 1, 3], [12, 12, 5], [7, 2, 4], [2, 12, 3.5]]), { ...STONE, original: { width: 224, height: 224 } })
  t.equal(found.length, MAX_FINDINGS)
  t.ok(contains(found[0].box, 12 * 16 + 8, 12 * 16 + 8), 'strongest first')
  t.ok(contains(found[1].box, 7 * 16 + 8, 2 * 16 + 8), 'second')
  t.ok(contains(found[2].box, 2 * 16 + 8, 12 * 16 + 8), 'third')
  t.ok(found[0].score > found[1].score && found[1].score > found[2].score, 'scores fall')
})

test('two peaks joined by a bridge well below them give two regions; the old halfway level joined them', async (t) => {
  // background -2, peaks 4 and 3.8 in row 6 and a bridge of 1.5 between them: the halfway level (about 1) lies
  // under the bridge, the shipped level (about 2.5) above it
  const bridged = map([[3, 6, 4], [4, 6, 1.5], [5, 6, 1.5], [6, 6, 1.5], [7, 6, 1.5], [8, 6, 1.5], [9, 6, 3.8]])
  const options = { ...STONE, original: { width: 224, height: 224 } }
  const halfway = findingsOf(bridged, { ...options, level: 0.5 })
  t.equal(halfway.length, 1, `at the halfway level the bridge joins them: ${JSON.stringify(halfway.map((f) => f.box))}`)
  const found = findingsOf(bridged, options)
  t.equal(found.length, 2, `two regions: ${JSON.stringify(found.map((f) => f.box))}`)
  t.ok(contains(found[0].box, 3 * 16 + 8, 6 * 16 + 8) && !contains(found[0].box, 9 * 16 + 8, 6 * 16 + 8), 'the top box holds the higher peak only')
  t.ok(contains(found[1].box, 9 * 16 + 8, 6 * 16 + 8) && !contains(found[1].box, 3 * 16 + 8, 6 * 16 + 8), 'the second box holds the lower peak only')
  t.ok(Math.abs(found[0].score - 1 / (1 + Math.exp(-4))) < 1e-6 && Math.abs(found[1].score - 1 / (1 + Math.exp(-3.8))) < 1e-6, 'each scores its own peak')
})

test('one broad peak stays one region, as wide as the peak', async (t) => {
  // a hill 5 cells wide centred on cell (6, 6), falling 0.35 per cell from 4: every hill cell is above the level
  const hill: Array<[number, number, number]> = []
  for (let y = 4; y <= 8; y++) {
    for (let x = 4; x <= 8; x++) hill.push([x, y, 4 - 0.35 * Math.hypot(x - 6, y - 6)])
  }
  const found = findingsOf(map(hill), { ...STONE, original: { width: 224, height: 224 } })
  t.equal(found.length, 1, `one region: ${JSON.stringify(found.map((f) => f.box))}`)
  t.ok(found[0].box.width >= 4 * 16 && found[0].box.height >= 4 * 16, `the box spans the hill (${found[0].box.width}x${found[0].box.height})`)
})

test('a broad shoulder about halfway up the peak is not part of its box', async (t) => {
  // stone-0015's map in small: a peak of 4 over cells (8-9, 7-8) on a shoulder of 1 over cells (3-7, 7-9), the
  // shoulder about halfway from the background (-2) to the peak: the halfway level takes it in or not as the
  // upload is resized; the shipped level leaves it out
  const raised: Array<[number, number, number]> = [[8, 7, 4], [9, 7, 4], [8, 8, 4], [9, 8, 4]]
  for (let y = 7; y <= 9; y++) for (let x = 3; x <= 7; x++) raised.push([x, y, 1.2])
  const options = { ...STONE, original: { width: 224, height: 224 } }
  const [halfway] = findingsOf(map(raised), { ...options, level: 0.5 })
  t.ok(contains(halfway.box, 3 * 16 + 8, 8 * 16 + 8), `at the halfway level the box takes in the shoulder: ${JSON.stringify(halfway.box)}`)
  const found = findingsOf(map(raised), options)
  t.equal(found.length, 1)
  t.ok(contains(found[0].box, 9 * 16, 8 * 16) && found[0].box.x >= 7 * 16, `the box holds the peak and not the shoulder: ${JSON.stringify(found[0].box)}`)
})

test('the temperature divides the peak in the score', async (t) => {
  const [hot] = findingsOf(map([[5, 5, 4]]), { ...STONE, temperature: 2, original: { width: 224, height: 224 } })
  t.ok(Math.abs(hot.score - 1 / (1 + Math.exp(-2))) < 1e-6, `${hot.score}`)
})

test('the letterbox is undone: a wide upload maps rows through its padding', async (t) => {
  // 448x224 upload: scale 0.5, content rows 56-167 of the model input; cell (7, 6) covers model rows 96-111
  const [finding] = findingsOf(map([[7, 6, 4]]), { ...STONE, original: { width: 448, height: 224 } })
  t.ok(contains(finding.box, 7.5 * 16 * 2, (6.5 * 16 - 56) * 2), `box ${JSON.stringify(finding.box)}`)
})

test('evidence in the padding only yields no box', async (t) => {
  // 448x224 upload: model rows 0-55 are padding; cell (7, 0) covers rows 0-15
  const found = findingsOf(map([[7, 0, 6]]), { ...STONE, original: { width: 448, height: 224 } })
  t.ok(found.every((f) => f.box.height > 0 && f.box.y >= 0), 'every box lies on the image')
  t.notOk(found.some((f) => f.score > 0.99), 'the padding peak is not reported')
})

test('evidenceMap is Stone minus Normal of one image of a batch', async (t) => {
  // batch of 2, classes [Normal, Stone], 1x2 maps
  const cam = Float32Array.from([1, 2, 5, 7, /* image 1: */ 0, 0, 3, -1])
  t.same(Array.from(evidenceMap(cam, [2, 2, 1, 2], 0, 1).values), [4, 5])
  t.same(Array.from(evidenceMap(cam, [2, 2, 1, 2], 1, 1).values), [3, -1])
  t.throws(() => evidenceMap(cam, [1, 4, 1, 2], 0, 1))
})
