import { test } from 'tap'
import { anyHit, mirroredTopHit, pointingGame, topHit, touches, type PointedSlice } from '../model/evaluation/pointing-game.js'

const IMAGE = { width: 400, height: 300 }
const STONE = { x: 300, y: 100, width: 10, height: 10 }

function slice (boxes: Array<{ x: number, y: number, width: number, height: number }>, group = 'y000'): PointedSlice {
  return { group, stones: [STONE], findings: boxes.map((box, i) => ({ box, score: 0.9 - i / 10 })), image: IMAGE }
}

test('boxes touch when they overlap or share an edge, not across a gap', async (t) => {
  t.ok(touches({ x: 0, y: 0, width: 300, height: 105 }, STONE), 'shared edge')
  t.ok(touches({ x: 305, y: 105, width: 2, height: 2 }, STONE), 'inside')
  t.notOk(touches({ x: 0, y: 0, width: 299, height: 300 }, STONE), 'one pixel short')
})

test('top and any hit: only the first finding counts as the top one', async (t) => {
  const second = slice([{ x: 20, y: 100, width: 20, height: 20 }, { x: 295, y: 95, width: 20, height: 20 }])
  t.notOk(topHit(second))
  t.ok(anyHit(second))
  t.notOk(topHit(slice([])), 'no findings, no hit')
})

test('the mirrored control: a small box on the stone is not mirrored onto it, a box spanning both sides is', async (t) => {
  t.notOk(mirroredTopHit(slice([{ x: 295, y: 95, width: 20, height: 20 }])))
  t.ok(mirroredTopHit(slice([{ x: 50, y: 50, width: 300, height: 200 }])))
  t.ok(mirroredTopHit(slice([{ x: 85, y: 95, width: 20, height: 20 }])), 'a box on the mirror image of the stone')
})

test('pointingGame counts the hits, the control and the median top box area', async (t) => {
  const slices = [
    slice([{ x: 295, y: 95, width: 20, height: 20 }], 'y000'),
    slice([{ x: 50, y: 50, width: 300, height: 200 }], 'y005'),
    slice([{ x: 20, y: 20, width: 40, height: 30 }], 'y010')
  ]
  const game = pointingGame(slices, { iterations: 0, seed: 1 })
  t.match(game, { slicesCalledStone: 3, groups: 3, topHits: 2, anyHits: 2, mirroredTopHits: 1 })
  t.equal(game.topHit.value, 2 / 3)
  t.equal(game.mirroredTopHit.value, 1 / 3)
  t.equal(game.medianTopBoxShare, 1200 / 120000, 'the middle of 400, 1200 and 60000 px²')
})
