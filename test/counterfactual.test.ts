import { test } from 'tap'
import { enlargeBox, placeDecoy, removeStones, type PixelImage } from '../model/data/counterfactual.js'
import { parseYoloBoxes, yildirimSplit, type PixelBox } from '../model/data/yildirim.js'

/** A 120x100 grey "body" with a smooth gradient and mild deterministic grain, plus bright square stones. */
function phantom (stones: PixelBox[]): PixelImage {
  const width = 120
  const height = 100
  const pixels = Buffer.alloc(width * height)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) pixels[y * width + x] = 90 + Math.round(x / 4) + ((x * 7 + y * 13) % 5)
  }
  for (const s of stones) {
    for (let y = s.y; y < s.y + s.height; y++) pixels.fill(250, y * width + s.x, y * width + s.x + s.width)
  }
  return { pixels, width, height, channels: 1 }
}

function inside (b: PixelBox, x: number, y: number): boolean {
  return x >= b.x && x < b.x + b.width && y >= b.y && y < b.y + b.height
}

test('yildirimSplit follows the shared fixed rule', async (t) => {
  t.equal(yildirimSplit('y005'), 'test')
  t.equal(yildirimSplit('y100'), 'test')
  t.equal(yildirimSplit('y001'), 'val')
  t.equal(yildirimSplit('y016'), 'val')
  t.equal(yildirimSplit('y002'), 'train')
  t.equal(yildirimSplit('y019'), 'train')
  t.throws(() => yildirimSplit('g005'))
})

test('YOLO lines become pixel boxes of the given image size', async (t) => {
  t.same(parseYoloBoxes('0 0.5 0.25 0.1 0.2\n\n', 200, 100), [{ x: 90, y: 15, width: 20, height: 20 }])
  t.throws(() => parseYoloBoxes('0 0.5 0.5', 10, 10))
})

test('removeStones erases the stone, keeps every pixel outside the region and is deterministic', async (t) => {
  const stone = { x: 30, y: 40, width: 5, height: 5 }
  const image = phantom([stone])
  const { image: removed, regions } = removeStones(image, [stone])
  t.equal(regions.length, 1)
  t.ok(regions[0].width > stone.width && regions[0].height > stone.height, 'region is enlarged')
  let maxInside = 0
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      const i = y * image.width + x
      if (inside(regions[0], x, y)) maxInside = Math.max(maxInside, removed.pixels[i])
      else if (removed.pixels[i] !== image.pixels[i]) t.fail(`pixel ${x},${y} outside the region changed`)
    }
  }
  t.ok(maxInside < 140, `no stone-bright pixel left (max ${maxInside})`)
  t.same(removeStones(image, [stone]).image.pixels, removed.pixels)
})

test('overlapping stone boxes are merged into one region', async (t) => {
  const stones = [{ x: 30, y: 40, width: 5, height: 5 }, { x: 33, y: 43, width: 5, height: 5 }]
  t.equal(removeStones(phantom(stones), stones).regions.length, 1)
})

test('placeDecoy in-paints an equal-sized region away from the stones and leaves the stone in place', async (t) => {
  const stone = { x: 20, y: 40, width: 6, height: 6 }
  const image = phantom([stone])
  const decoy = placeDecoy(image, [stone])
  if (decoy === undefined) return t.fail('no decoy place found in a uniform body')
  const expected = enlargeBox(stone, image.width, image.height)
  t.equal(decoy.regions[0].width, expected.width)
  t.equal(decoy.regions[0].height, expected.height)
  t.notOk(inside(expected, decoy.regions[0].x, decoy.regions[0].y), 'decoy is away from the stone')
  t.equal(decoy.image.pixels[(stone.y + 2) * image.width + stone.x + 2], 250, 'stone untouched')
  t.not(Buffer.compare(decoy.image.pixels, image.pixels), 0, 'something was in-painted')
})

test('placeDecoy refuses air: an image that is black outside the stone has no decoy place', async (t) => {
  const stone = { x: 20, y: 40, width: 6, height: 6 }
  const image = phantom([stone])
  image.pixels.fill(0)
  t.equal(placeDecoy(image, [stone]), undefined)
})
