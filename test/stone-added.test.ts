import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'tap'
import { decodeForModel } from '../inference/preprocess.js'
import { locateKidneys } from '../model/data/kidney-location.js'
import { seededRandom } from '../model/data/random.js'
import { addStoneTwins, addVascularMimic, patchPairs, resample, type Patch, type PatchPair } from '../model/data/stone-added.js'
import { TRAINING_INPUT, TRAINING_SPEC } from '../model/training/training-input.js'
import { CT_KIDNEY } from './helper.js'

const SIDE = TRAINING_INPUT.width

async function modelInput (relative: string): Promise<Buffer> {
  return await decodeForModel(await readFile(join(CT_KIDNEY, relative)), TRAINING_SPEC, { channels: 1, maxPixels: 50_000_000 })
}

/** A 224x224 "slice" (model input) of flat tissue with a 3x3 stone at (x, y) when given. */
function flat (stone?: { x: number, y: number }): Uint8Array {
  const pixels = new Uint8Array(SIDE * SIDE).fill(100)
  if (stone !== undefined) for (let dy = 0; dy < 3; dy++) pixels.fill(240, (stone.y + dy) * SIDE + stone.x, (stone.y + dy) * SIDE + stone.x + 3)
  return pixels
}

test('patchPairs: the stone patch is the stone bump, the decoy patch what the decoy in-painting took away', async (t) => {
  const original = flat({ x: 50, y: 60 })
  const stoneRemoved = flat()
  const decoy = Uint8Array.from(original)
  decoy[100 * SIDE + 150] = 90 // the decoy place held slightly brighter tissue
  const [pair] = patchPairs({
    original, stoneRemoved, decoy, originalSize: { width: SIDE, height: SIDE },
    removedRegions: [{ x: 48, y: 58, width: 7, height: 7 }], decoyRegions: [{ x: 146, y: 96, width: 7, height: 7 }]
  }, TRAINING_INPUT)
  t.equal(Math.max(...pair.stone.values), 140, 'stone bump = 240 - 100')
  t.equal(pair.stone.values.filter((v) => v > 0).length, 9, 'only the stone pixels')
  t.equal(Math.max(...pair.decoy.values), 10)
  t.equal(pair.stone.width, pair.decoy.width)
})

test('patchPairs drops faint stones and decoys that took away something bright', async (t) => {
  const base = { stoneRemoved: flat(), originalSize: { width: SIDE, height: SIDE }, removedRegions: [{ x: 48, y: 58, width: 7, height: 7 }], decoyRegions: [{ x: 146, y: 96, width: 7, height: 7 }] }
  const faint = flat()
  faint[61 * SIDE + 51] = 110
  t.same(patchPairs({ ...base, original: faint, decoy: faint }, TRAINING_INPUT), [], 'a 10-level bump is no stone')
  const bright = flat({ x: 50, y: 60 })
  const decoy = Uint8Array.from(bright)
  decoy[100 * SIDE + 150] = 20 // 80 levels taken away: a bone edge, not tissue grain
  t.same(patchPairs({ ...base, original: bright, decoy }, TRAINING_INPUT), [])
})

test('resample keeps the peak of a patch scaled up or down and never returns an empty patch', async (t) => {
  const patch = { values: Float32Array.from([0, 0, 0, 0, 8, 0, 0, 0, 0]), width: 3, height: 3 }
  t.equal(Math.max(...resample(patch, 1).values), 8)
  t.same([resample(patch, 0.1).width, resample(patch, 0.1).height], [1, 1])
  t.equal(resample(patch, 2).width, 6)
})

test('locateKidneys finds the spine on real axial slices, beside the midline in the lower body', async (t) => {
  for (const slice of ['test/stone/stone-0924.jpg', 'train/normal/normal-0018.jpg']) {
    const pixels = await modelInput(slice)
    const location = locateKidneys({ pixels, width: SIDE, height: SIDE })
    if (location === undefined) {
      t.fail(`${slice}: no spine found`)
      continue
    }
    const { body, spineCentre, kidneys } = location
    t.ok(Math.abs(spineCentre.x - (body.x + body.width / 2)) < 0.15 * body.width, `${slice}: spine near the midline`)
    t.ok(spineCentre.y > body.y + body.height / 2, `${slice}: spine in the lower (posterior) half`)
    t.ok(kidneys[0].x < spineCentre.x && kidneys[1].x > spineCentre.x, `${slice}: one kidney on each side`)
  }
  t.equal(locateKidneys({ pixels: new Uint8Array(SIDE * SIDE), width: SIDE, height: SIDE }), undefined, 'an empty image has no body')
})

test('addStoneTwins on a real stone-free axial slice: same place, same gain, only the box changes, seeded', async (t) => {
  const target = await modelInput('train/normal/normal-0018.jpg')
  const pair: PatchPair = {
    stone: { values: Float32Array.from([0, 60, 0, 60, 120, 60, 0, 60, 0]), width: 3, height: 3 },
    decoy: { values: Float32Array.from([0, 5, 0, 5, 10, 5, 0, 5, 0]), width: 3, height: 3 }
  }
  const twins = addStoneTwins({ pixels: target, width: SIDE, height: SIDE }, pair, seededRandom(3))
  if (twins === undefined) throw new Error('no site found on a kidney-level slice')
  const { stoneAdded, decoy, box } = twins
  let stoneRise = 0
  let decoyRise = 0
  for (let i = 0; i < target.length; i++) {
    const x = i % SIDE
    const y = Math.floor(i / SIDE)
    const inBox = x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height
    if (!inBox && (stoneAdded[i] !== target[i] || decoy[i] !== target[i])) t.fail(`pixel ${x},${y} outside the box changed`)
    stoneRise = Math.max(stoneRise, stoneAdded[i] - target[i])
    decoyRise = Math.max(decoyRise, decoy[i] - target[i])
  }
  t.ok(stoneRise > 30, `the stone stands out (${stoneRise} grey levels)`)
  t.ok(decoyRise <= stoneRise / 8, `the decoy rises by the same gain times its own small patch (${decoyRise})`)
  const again = addStoneTwins({ pixels: target, width: SIDE, height: SIDE }, pair, seededRandom(3))
  t.same(again?.stoneAdded, stoneAdded, 'same seed, same pixels')
})

/** A round stone patch of the given width: a bump of 120 at its centre falling to 0 at its rim. */
function disk (width: number): Patch {
  const values = new Float32Array(width * width)
  const r = width / 2
  for (let y = 0; y < width; y++) {
    for (let x = 0; x < width; x++) values[y * width + x] = Math.max(0, 120 * (1 - Math.hypot(x + 0.5 - r, y + 0.5 - r) / r))
  }
  return { values, width, height: width }
}

test('addVascularMimic puts the whole spot in front of the vertebral body, within half its width of the midline, seeded', async (t) => {
  for (const slice of ['train/normal/normal-0018.jpg', 'train/stone/stone-0001.jpg']) {
    const target = await modelInput(slice)
    const location = locateKidneys({ pixels: target, width: SIDE, height: SIDE })
    if (location === undefined) {
      t.fail(`${slice}: no spine found on a kidney-level slice`)
      continue
    }
    const { spineCentre, vertebra, vertebralWidth: unit } = location
    // real stone patches are 8 px wide at the median at model resolution (16 px at the 90th percentile: those find
    // no room in front of a small vertebra, and that slice gets no mimic)
    for (const width of [3, 8, 12]) {
      const mimic = addVascularMimic({ pixels: target, width: SIDE, height: SIDE }, disk(width), seededRandom(5))
      if (mimic === undefined) {
        t.fail(`${slice}, ${width} px: no site found`)
        continue
      }
      const changed = [...target.keys()].filter((i) => mimic.image[i] !== target[i])
      const rise = Math.max(...changed.map((i) => mimic.image[i] - target[i]))
      t.ok(rise > 30, `${slice}, ${width} px: the spot stands out (${rise} grey levels)`)
      const outside = changed.filter((i) => Math.floor(i / SIDE) >= vertebra.y || Math.abs(i % SIDE + 0.5 - spineCentre.x) > 0.5 * unit + 1)
      t.same(outside, [], `${slice}, ${width} px: no pixel changed at or behind the vertebra's front edge or beside the band`)
      t.same(addVascularMimic({ pixels: target, width: SIDE, height: SIDE }, disk(width), seededRandom(5))?.image, mimic.image, `${slice}, ${width} px: same seed, same pixels`)
    }
  }
  const wide = disk(Math.ceil(SIDE / 4))
  t.equal(addVascularMimic({ pixels: await modelInput('train/normal/normal-0018.jpg'), width: SIDE, height: SIDE }, wide, seededRandom(5)), undefined,
    'a patch wider than the band has no site')
})
