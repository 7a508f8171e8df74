import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import t from 'tap'

// glibc reads its malloc settings at process start, so the wrapper must set them before node runs.
const run = promisify(execFile)
const printSettings = ['-p', '`${process.env.MALLOC_MMAP_THRESHOLD_} ${process.env.MALLOC_TRIM_THRESHOLD_}`']
const env = { ...process.env }
delete env.MALLOC_MMAP_THRESHOLD_
delete env.MALLOC_TRIM_THRESHOLD_

t.test('the wrapper sets the measured malloc settings for the command it runs', async (t) => {
  const { stdout } = await run('sh', ['scripts/tuned-malloc.sh', process.execPath, ...printSettings], { env })
  t.equal(stdout.trim(), '4194304 67108864')
})

t.test('a value set by the caller wins', async (t) => {
  const { stdout } = await run('sh', ['scripts/tuned-malloc.sh', process.execPath, ...printSettings], { env: { ...env, MALLOC_MMAP_THRESHOLD_: '131072' } })
  t.equal(stdout.trim(), '131072 67108864')
})

t.test('npm start, the benchmark, the soak and the container all start through it', async (t) => {
  const { scripts } = JSON.parse(await readFile('package.json', 'utf8')) as { scripts: Record<string, string> }
  for (const name of ['start', 'bench', 'soak']) t.match(scripts[name], /^sh scripts\/tuned-malloc\.sh /, name)
  t.match(await readFile('Dockerfile', 'utf8'), /CMD \["sh", "scripts\/tuned-malloc\.sh", "node"/)
})
