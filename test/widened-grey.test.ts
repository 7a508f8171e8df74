import t from 'tap'
import sharp from 'sharp'
import { checkImageHeader } from '../inference/decode.js'
import { WORDS_PER_TURN, widenedFromEightBits } from '../inference/widened-grey.js'

/** 16-bit samples in memory order, each `level` x 257 (an 8-bit level widened), as sharp decodes a 16-bit PNG. */
function widened (samples: number, level = 100): Buffer {
  return Buffer.alloc(samples * 2, level)
}

/** Turns of the event loop (setImmediate callbacks) that ran while `work` did. */
async function turnsDuring<T> (work: () => Promise<T>): Promise<{ result: T, turns: number }> {
  let turns = 0
  let running = true
  const turn = (): void => {
    if (!running) return
    turns++
    setImmediate(turn)
  }
  setImmediate(turn)
  const result = await work().finally(() => { running = false })
  return { result, turns }
}

t.test('a sample is widened exactly when it is a multiple of 257, in either byte order', async (t) => {
  const found: number[] = []
  for (let v = 0; v < 65536; v++) {
    const raw = widened(9)
    raw.writeUInt16LE(v, 8) // the middle sample of nine: inside a 32-bit word, not the tail
    if (await widenedFromEightBits(raw, 1)) found.push(v)
  }
  t.same(found, Array.from({ length: 256 }, (_, level) => level * 257), 'the 256 multiples of 257, and no other value')
})

t.test('every grey sample is checked, the last of an odd count and one after an unaligned start included; alpha is not', async (t) => {
  for (const samples of [1, 2, 3, 7, 8]) {
    for (let at = 0; at < samples; at++) {
      const raw = widened(samples)
      raw[at * 2] = 101
      t.equal(await widenedFromEightBits(raw, 1), false, `${samples} samples, sample ${at} not widened`)
    }
    t.equal(await widenedFromEightBits(widened(samples), 1), true, `${samples} samples, all widened`)
  }
  // A view two bytes into its buffer: 32-bit words cannot start there.
  const backing = widened(9)
  backing[16] = 7
  t.equal(await widenedFromEightBits(backing.subarray(2), 1), false, 'unaligned start: the bad sample is found')
  t.equal(await widenedFromEightBits(widened(9).subarray(2), 1), true, 'unaligned start: all widened')
  // Grey and alpha: an alpha of any value is fine, a grey sample that is not widened is not.
  const greyAlpha = widened(8)
  for (let pixel = 0; pixel < 4; pixel++) greyAlpha.writeUInt16LE(9000 + pixel, pixel * 4 + 2)
  t.equal(await widenedFromEightBits(greyAlpha, 2), true, 'alpha values of no 8-bit level')
  greyAlpha.writeUInt16LE(9000, 3 * 4)
  t.equal(await widenedFromEightBits(greyAlpha, 2), false, 'the last grey sample not widened')
})

t.test('the check lets the event loop turn between slices of samples, and stops at the first that is not widened', async (t) => {
  // Four slices of WORDS_PER_TURN words (two samples each), as many samples as a 2900x2900 PNG.
  const samples = 4 * WORDS_PER_TURN * 2
  const whole = await turnsDuring(async () => await widenedFromEightBits(widened(samples), 1))
  t.equal(whole.result, true)
  // On the check of one loop over all samples, no turn: every other request waited for it.
  t.ok(whole.turns >= 3, `${whole.turns} turns while ${samples} samples were checked`)
  const early = widened(samples)
  early[2] = 0
  const first = await turnsDuring(async () => await widenedFromEightBits(early, 1))
  t.equal(first.result, false)
  t.equal(first.turns, 0, 'refused in the first slice, without waiting for a turn')
  const late = widened(samples)
  late[late.length - 1] = 0
  t.equal(await widenedFromEightBits(late, 1), false, 'the last sample of the last slice')
})

t.test('a 16-bit greyscale PNG is charged its image and its 16-bit samples as they are held: 2 bytes a channel, alpha too', async (t) => {
  // review17: grey and alpha were charged 2 bytes a pixel for samples that hold 4 (at MAX_PIXELS, 80 MB uncharged).
  const grey = sharp({ create: { width: 100, height: 80, channels: 3, background: '#808080' } }).greyscale()
  for (const [label, png, sampleBytes] of [
    ['grey', await grey.clone().toColourspace('grey16').png().toBuffer(), 2],
    ['grey and alpha', await grey.clone().ensureAlpha().toColourspace('grey16').png().toBuffer(), 4]
  ] as const) {
    const charged: number[] = []
    const checked = await checkImageHeader(png, 'png', { channels: 3, maxPixels: 1_000_000, reserve: (bytes: number) => { charged.push(bytes) } })
    t.same(charged, [100 * 80 * 3 + 100 * 80 * sampleBytes], `${label}: one charge, the 8-bit image and the samples`)
    t.equal(checked.decoded?.pixels.length, 100 * 80 * 3, `${label}: decoded once, to the model's channels`)
  }
})
