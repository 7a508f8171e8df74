import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Command } from 'commander'
import sharp from 'sharp'
import { decodeImage } from '../inference/decode.js'
import { MAX_PNG_CHUNKS } from '../inference/image-header.js'
import { pngWithUnknownChunks } from '../test/hostile/craft.js'
import { ctKidneyImage } from '../test/helper.js'

const program = new Command('bench/event-loop-stalls.ts')
  .description('The longest event-loop gap (between 1 ms timer ticks) while one small upload that is costly to check is decoded in-process, against the same wait with nothing running')
  .option('--rounds <n>', 'rounds per upload', '9')
  .parse()
const rounds = Number(program.opts<{ rounds: string }>().rounds)

/** The longest wait of a 1 ms timer while `work` runs, the wait after its last tick included. */
async function longestGap (work: () => Promise<unknown>): Promise<number> {
  let last = performance.now()
  let longest = 0
  const tick = setInterval(() => {
    const now = performance.now()
    longest = Math.max(longest, now - last)
    last = now
  }, 1)
  await work().catch(() => {})
  clearInterval(tick)
  return Math.max(longest, performance.now() - last)
}

const side = 6300
const uploads: Record<string, Buffer> = {
  [`uniform 16-bit greyscale PNG, ${side}x${side} (widened from 8 bits)`]: await sharp(new Uint16Array(side * side).fill(100 * 257),
    { raw: { width: side, height: side, channels: 1 } }).toColourspace('grey16').png({ compressionLevel: 9 }).toBuffer(),
  // Past MAX_PNG_CHUNKS the walk stops at the limit; the count is the one an attack sent.
  'PNG of 1.4 million empty unknown chunks': pngWithUnknownChunks(await sharp(await ctKidneyImage('test/stone', 0)).png().toBuffer(), 1_400_000)
}
const options = { channels: 1 as const, maxPixels: 40_000_000 }
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]

console.log(`MAX_PNG_CHUNKS ${MAX_PNG_CHUNKS}; ${rounds} rounds each; milliseconds`)
for (const [name, bytes] of Object.entries(uploads)) {
  const gaps: number[] = []
  for (let round = 0; round < rounds; round++) gaps.push(await longestGap(async () => await decodeImage(bytes, options)))
  console.log(`${name} (${bytes.length} bytes): longest gap median ${median(gaps).toFixed(1)}, max ${Math.max(...gaps).toFixed(1)}`)
}
const idle: number[] = []
for (let round = 0; round < rounds; round++) idle.push(await longestGap(async () => await sleep(1000)))
console.log(`nothing running, 1 s: longest gap median ${median(idle).toFixed(1)}, max ${Math.max(...idle).toFixed(1)}`)
