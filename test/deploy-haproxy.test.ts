import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { freePort } from '../bench/processes.js'
import { build } from './helper.js'

const run = promisify(execFile)
const CONFIG = fileURLToPath(new URL('../deploy/haproxy/haproxy.cfg', import.meta.url))
const MISSING = 'haproxy is missing: `bash scripts/apt-install.sh haproxy` (npm test\'s pretest runs it)'

function environment (bind: string, stats: string, replicas: string[]): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    KIDNEY_LB_BIND: bind,
    KIDNEY_LB_STATS: stats,
    ...Object.fromEntries(replicas.map((address, i) => [`KIDNEY_REPLICA_${i + 1}`, address]))
  }
}

/** `haproxy -c` on the shipped file with these replica addresses in the environment: its exit code and output. */
async function check (replicas: string[]): Promise<{ code: number, output: string }> {
  try {
    const { stdout, stderr } = await run('haproxy', ['-c', '-f', CONFIG], { env: environment('127.0.0.1:8080', '/run/kidney-lb.sock', replicas) })
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const e = error as { code?: number | string, stdout?: string, stderr?: string }
    if (e.code === 'ENOENT') throw new Error(MISSING)
    return { code: Number(e.code), output: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

/** GET through the balancer from one loopback address (a client of its own), with extra headers: the status. */
async function get (port: number, path: string, localAddress: string, headers: Record<string, string> = {}): Promise<number> {
  return await new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, localAddress, headers }, (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode ?? 0))
    }).on('error', reject).end()
  })
}

t.test('deploy/haproxy/haproxy.cfg takes two replicas or three from the environment (docs/deploy.md)', async (t) => {
  for (const count of [2, 3]) {
    const { code, output } = await check(['10.0.0.1:3000', '10.0.0.2:3000', '10.0.0.3:3000'].slice(0, count))
    t.equal(code, 0, `${count} replicas: ${output}`)
  }
  // the third server line is there when its variable is: an address that is none makes the check fail
  const third = await check(['10.0.0.1:3000', '10.0.0.2:3000', 'not an address'])
  t.not(third.code, 0, 'KIDNEY_REPLICA_3 is read when set')
  const second = await check(['10.0.0.1:3000'])
  t.not(second.code, 0, 'two replicas at least: KIDNEY_REPLICA_2 is required')
})

t.test('behind the balancer each client has its own rate limit budget, and cannot pick another', async (t) => {
  const app = await build(t, { config: { trustProxy: true, rateLimit: { max: 3, windowMs: 60_000 } } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const replica = `127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const dir = await mkdtemp(join(tmpdir(), 'kidney-lb-'))
  const port = await freePort()
  const haproxy = spawn('haproxy', ['-db', '-f', CONFIG], { env: environment(`127.0.0.1:${port}`, join(dir, 'stats.sock'), [replica, replica]), stdio: 'ignore' })
  const exited = new Promise<void>((resolve) => haproxy.once('exit', () => resolve()))
  haproxy.once('error', () => t.fail(MISSING))
  t.teardown(async () => {
    haproxy.kill('SIGTERM')
    await exited
    await rm(dir, { recursive: true, force: true })
  })
  // the probes are exempt from the rate limit: poll until the balancer listens and forwards
  for (let ready = 0; ready !== 200; ready = await get(port, '/health/ready', '127.0.0.1').catch(() => 0)) await sleep(100)

  const first = [await get(port, '/model', '127.0.0.2'), await get(port, '/model', '127.0.0.2'), await get(port, '/model', '127.0.0.2')]
  t.same(first, [200, 200, 200], 'client A spends its budget of 3')
  t.equal(await get(port, '/model', '127.0.0.2'), 429, 'and is limited')
  t.equal(await get(port, '/model', '127.0.0.3'), 200, 'client B has a budget of its own, not the balancer\'s address shared with A')
  t.equal(await get(port, '/model', '127.0.0.2', { 'x-forwarded-for': '198.51.100.7' }), 429,
    'an X-Forwarded-For sent by A is replaced by its address, so it cannot move A to another budget')
})
