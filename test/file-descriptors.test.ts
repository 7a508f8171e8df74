import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t from 'tap'
import { startService } from '../bench/processes.js'

// Every file descriptor taken: the service as users start it (bin/serve), its descriptor limit lowered with
// util-linux's prlimit to a few dozen above what it holds when ready, then twice that many idle connections.

t.test('connections up to the descriptor limit do not end the process; it serves again once they close', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'kidney-fds-'))
  t.teardown(async () => await rm(work, { recursive: true, force: true }))
  const log = join(work, 'service.log')
  const service = await startService({ RECORDS_STORE: 'off', UPLOAD_DIR: join(work, 'uploads'), LOG_LEVEL: 'info' }, log)
  t.teardown(async () => await service.stop())
  const held = (await readdir(`/proc/${service.pid}/fd`)).length
  const limit = held + 40
  await promisify(execFile)('prlimit', ['--pid', String(service.pid), `--nofile=${limit}:${limit}`])

  const port = Number(new URL(service.url).port)
  const sockets: Socket[] = []
  for (let i = 0; i < 2 * (limit - held); i++) sockets.push(connect(port, '127.0.0.1').on('error', () => {}))
  // the memory samplers (liveness, under-pressure) run every second: give them a few turns with no descriptor left
  await sleep(3_000)
  for (const socket of sockets) socket.destroy()
  await sleep(500)

  const res = await fetch(`${service.url}/health/live`).catch((error: Error) => error)
  t.equal(res instanceof Response ? res.status : res.message, 200,
    `still serving after ${sockets.length} connections against a limit of ${limit} descriptors (${held} held when ready)`)
  t.notMatch(await readFile(log, 'utf8'), /uncaught|EMFILE/, 'no uncaught error in the log')
})
