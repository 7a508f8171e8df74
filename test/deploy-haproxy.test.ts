import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

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

