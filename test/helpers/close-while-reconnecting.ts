import { createHook } from 'node:async_hooks'
import { once } from 'node:events'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { buildApp } from '../../app.js'
import { freePort } from '../../bench/processes.js'
import { RECORDS_OFF } from '../helper.js'

/**
 * Run in a child process by test/records-policy.test.ts. Builds the service against a PostgreSQL server that cannot
 * be reached, closes it at several moments of its background reconnect, and prints one JSON line per close, then a
 * last line with what is still alive and any error that escaped. Nothing here holds the event loop open while a close
 * is awaited, as in a process whose server has stopped: a close that waited on a timer holding nothing open (a
 * reconnect backoff) would let the process drain and exit (code 13) without printing its line.
 *
 * - `silent`: a server that accepts the connection and never answers (a host whose PostgreSQL hangs): an attempt is
 *   under way until DATABASE_TIMEOUT_MS (1 s here), and the close comes `delay` ms after its connection arrived,
 *   inside the attempt or, for the longer delays on a slow machine, in the backoff after it.
 * - `refused`: a loopback port where nothing listens: the close comes `delay` ms after the service is ready, in a
 *   backoff or an attempt, wherever that falls.
 * - `hung`: the silent server with an hour for DATABASE_TIMEOUT_MS: the close comes while the first attempt waits,
 *   and must cut it rather than wait for it.
 */

const escaped: string[] = []
process.on('unhandledRejection', (error) => escaped.push(`unhandledRejection: ${String(error)}`))
process.on('uncaughtException', (error) => escaped.push(`uncaughtException: ${String(error)}`))

const TIMEOUT_MS = 1_000
const SILENT_DELAYS = [0, 5, 50, 300, 700]
const REFUSED_DELAYS = [0, 1_000, 3_000]

async function service (databaseUrl: string, timeoutMs = TIMEOUT_MS): Promise<Awaited<ReturnType<typeof buildApp>>> {
  const app = await buildApp({ logger: false, config: { records: { ...RECORDS_OFF, store: 'postgres', databaseUrl, timeoutMs, required: true } } })
  await app.ready()
  await app.model.loaded
  return app
}

/**
 * Timers and TCP sockets not yet cleared, fired or closed, unref'd ones included (a reconnect backoff or a sweep
 * timer is unref'd, so process.getActiveResourcesInfo() would not list it). Ours are made before the hook is
 * enabled or are cleared before a close is awaited.
 */
const pending = new Map<number, string>()
const TRACKED = new Set(['Timeout', 'TCPWRAP', 'TCPCONNECTWRAP'])
createHook({
  init (asyncId, type) { if (TRACKED.has(type)) pending.set(asyncId, type) },
  destroy (asyncId) { pending.delete(asyncId) }
}).enable()

/**
 * What is left (stdio aside) once the handles just closed have gone. A cleared timer's destroy hook runs in a later
 * turn of the event loop, later still on a loaded machine (the check once flaked so, listing three timers the close
 * had cleared), so this looks again for up to ten turns; a timer or socket that was left running is still listed then.
 */
async function alive (): Promise<string[]> {
  let left: string[] = []
  for (let turn = 0; turn < 10; turn++) {
    await new Promise((resolve) => setImmediate(resolve))
    const active = process.getActiveResourcesInfo().filter((resource) => resource !== 'TTYWrap' && resource !== 'PipeWrap')
    left = [...active, ...pending.values()]
    if (left.length === 0) break
  }
  return left
}

async function pause (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

console.log(JSON.stringify({ plan: { silent: SILENT_DELAYS, refused: REFUSED_DELAYS, hung: [0] } }))

const silent = createServer()
silent.unref()
silent.listen(0, '127.0.0.1')
await once(silent, 'listening')
const silentUrl = `postgres://kidney@127.0.0.1:${(silent.address() as AddressInfo).port}/records`

for (const delay of SILENT_DELAYS) {
  const accepted: Socket[] = []
  let arrived: () => void = () => {}
  const onConnection = (socket: Socket): void => {
    socket.unref()
    socket.resume() // read (and drop) what the client sends, so its closing the connection closes ours
    accepted.push(socket)
    arrived()
  }
  silent.on('connection', onConnection)
  const app = await service(silentUrl)
  // Close while an attempt is under way: the one whose connection is still open, else the next one (meanwhile a
  // timer of ours holds the process: the service's backoff does not).
  if (accepted.every((socket) => socket.closed)) {
    const holder = setInterval(() => {}, 60_000)
    await new Promise<void>((resolve) => { arrived = resolve })
    clearInterval(holder)
  }
  await pause(delay)
  await app.close()
  silent.off('connection', onConnection)
  console.log(JSON.stringify({ mode: 'silent', delay, closed: true, connections: accepted.length, alive: await alive() }))
}

{
  let arrived: () => void = () => {}
  const connected = new Promise<void>((resolve) => { arrived = resolve })
  const onConnection = (socket: Socket): void => {
    socket.unref()
    socket.resume()
    arrived()
  }
  silent.on('connection', onConnection)
  const app = await service(silentUrl, 3_600_000)
  const holder = setInterval(() => {}, 60_000)
  await connected
  clearInterval(holder)
  await app.close()
  silent.off('connection', onConnection)
  console.log(JSON.stringify({ mode: 'hung', delay: 0, closed: true, alive: await alive() }))
}
silent.close()

for (const delay of REFUSED_DELAYS) {
  const app = await service(`postgres://kidney@127.0.0.1:${await freePort()}/records`)
  await pause(delay)
  await app.close()
  console.log(JSON.stringify({ mode: 'refused', delay, closed: true, alive: await alive() }))
}

console.log(JSON.stringify({ alive: await alive(), escaped }))
