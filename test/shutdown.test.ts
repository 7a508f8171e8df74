import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { freePort } from './helpers/free-port.js'
import { RecordStore } from '../records/store.js'
import { ctKidneyImage, UUID } from './helper.js'
import { splitUpload } from './helpers/split-upload.js'

const REPO = fileURLToPath(new URL('..', import.meta.url))

async function waitUntilReady (base: string): Promise<void> {
  // a first start creates the embedded records database: tens of seconds on a loaded 2-core machine
  for (let i = 0; i < 1800; i++) {
    const status = await fetch(`${base}/health/ready`).then((res) => res.status, () => 0)
    if (status === 200) return
    await sleep(100)
  }
  throw new Error('the server did not become ready')
}

/** Every process below `pid` (children, grandchildren, ...), read from Linux's /proc. */
async function descendants (pid: number): Promise<Array<{ pid: number, command: string }>> {
  const parents = new Map<number, number>()
  for (const name of await readdir('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue
    // /proc/<pid>/stat: "pid (comm) state ppid ...", where comm may itself contain spaces and parentheses
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (stat !== '') parents.set(Number(name), ppid)
  }
  const below: number[] = []
  for (let frontier = [pid]; frontier.length > 0;) {
    frontier = [...parents].filter(([, parent]) => frontier.includes(parent)).map(([child]) => child)
    below.push(...frontier)
  }
  return await Promise.all(below.map(async (child) => ({
    pid: child,
    command: (await readFile(`/proc/${child}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ').trim()
  })))
}

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function connectionRefused (port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1')
  const outcome = await new Promise<string>((resolve) => {
    socket.on('connect', () => { socket.destroy(); resolve('connected') })
    socket.on('error', (error: Error & { code?: string }) => resolve(error.code ?? error.message))
  })
  return outcome === 'ECONNREFUSED'
}

t.test('SIGTERM: accepted requests get complete answers and their records, new connections are refused, exit code 0', async (t) => {
  const port = await freePort()
  const dataDir = await mkdtemp(join(tmpdir(), 'kidney-shutdown-records-'))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
  const base = `http://127.0.0.1:${port}`
  // bin/serve is what npm start and the container run; its exec makes the signal reach node itself
  const child = spawn(join(REPO, 'bin/serve'), [], {
    cwd: REPO,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', UPLOAD_RETENTION: 'none', RATE_LIMIT_MAX: '0', DATA_DIR: dataDir },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await waitUntilReady(base)

  const slice = await ctKidneyImage('test/stone')
  const slow = Array.from({ length: 3 }, () => splitUpload(port, slice))
  const form = (): FormData => {
    const data = new FormData()
    data.append('file', new Blob([new Uint8Array(slice)], { type: 'image/jpeg' }), 'slice.jpg')
    return data
  }
  // Sent just before the signal: from outside it cannot be known which of these the server had accepted, so
  // each must get a complete answer, a typed 503 SHUTTING_DOWN (a kept-alive connection reused after the
  // signal), or no answer at all (a connection refused or dropped before any byte).
  const concurrent = Array.from({ length: 6 }, async () => {
    try {
      const res = await fetch(`${base}/predict`, { method: 'POST', body: form() })
      return { status: res.status, body: await res.text() }
    } catch (error) {
      return { refused: (error as { cause?: { code?: string } }).cause?.code }
    }
  })
  await Promise.all(slow.map(async (upload) => await upload.accepted))
  child.kill('SIGTERM')
  await sleep(500)
  for (const upload of slow) upload.finish()

  t.ok(await connectionRefused(port), 'no new connections once shutting down')

  const answered: string[] = []
  const checkComplete = (answer: { status?: number, body?: string }, label: string): void => {
    t.equal(answer.status, 200, `${label}: 200`)
    const body = JSON.parse(answer.body ?? '{}') as { id?: string, prediction?: string }
    t.match(body.id, UUID, `${label}: a complete prediction body`)
    answered.push(body.id ?? '')
    t.ok(['Normal', 'Stone'].includes(body.prediction ?? ''))
  }
  for (const [i, upload] of slow.entries()) checkComplete(await upload.answer, `upload ${i}, body still arriving at SIGTERM`)
  const results = await Promise.all(concurrent)
  for (const [i, result] of results.entries()) {
    if ('refused' in result) t.match(result.refused, /^(ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET)$/, `request ${i}: no answer at all`)
    else if (result.status === 503) t.equal(JSON.parse(result.body).code, 'SHUTTING_DOWN', `request ${i}: turned away, typed`)
    else checkComplete(result, `request ${i} sent just before SIGTERM`)
  }
  t.comment(`late requests: ${results.map((r) => 'refused' in r ? String(r.refused) : r.status).join(', ')}`)
  const [code, signal] = await exited
  t.equal(signal, null, 'not killed by a signal')
  t.equal(code, 0, 'exit code 0 after a graceful close')
  t.notMatch(stderr, /killed by timeout|uncaught/, 'within the grace period, no uncaught error')

  const { store } = await RecordStore.open({ engine: 'pglite', dataDir })
  const recorded = await Promise.all(answered.map(async (id) => (await store.getPredictionRecord(id))?.id))
  await store.close()
  t.same(recorded, answered, `each of the ${answered.length} answers given during shutdown was recorded before the process exited`)
})

t.test('npm start: SIGTERM to the npm process reaches the server, which stops cleanly (exit 0, no orphan, port closed)', async (t) => {
  const port = await freePort()
  // What a process manager does with `npm start`: it knows only npm's pid, and signals that.
  const npm = spawn('npm', ['start'], {
    cwd: REPO,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', UPLOAD_RETENTION: 'none', RECORDS_STORE: 'off' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  npm.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = once(npm, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  let started: Array<{ pid: number, command: string }> = []
  t.teardown(() => {
    for (const { pid } of started) if (isRunning(pid)) process.kill(pid, 'SIGKILL')
    if (npm.exitCode === null) npm.kill('SIGKILL')
  })
  await waitUntilReady(`http://127.0.0.1:${port}`)
  started = await descendants(npm.pid ?? 0)
  t.equal(started.filter(({ command }) => command.includes('server.ts')).length, 1, 'the node server runs below npm')

  npm.kill('SIGTERM')
  const [code, signal] = await exited
  t.equal(signal, null, 'npm was not killed by the signal: it waited for the server')
  t.equal(code, 0, 'npm start exits 0 after the server\'s graceful close', { stderr })
  t.same(started.filter(({ pid }) => isRunning(pid)), [], 'no process started by npm start is left running')
  t.ok(await connectionRefused(port), 'the port is closed')
})
