import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { freePort } from './helpers/free-port.js'

// A WebAssembly module's out-of-bounds memory access is a RuntimeError for its caller: V8 catches the SIGSEGV it
// causes in its own handler. PGlite's database and the DICOM codecs are WebAssembly in worker threads. The service's
// shutdown handler (close-with-grace) listened to SIGSEGV by default, which replaced V8's handler: such an access then
// took the whole service down. Seen on a running service whose DATA_DIR filled up: PGlite's thread faulted, the log
// said 'second SIGSEGV, exiting', and the process stopped listening.

const REPO = fileURLToPath(new URL('..', import.meta.url))

t.test('an out-of-bounds access in a WebAssembly worker is an error for that worker, not the end of the service', async (t) => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const child = spawn(join(REPO, 'bin/serve'), [], {
    cwd: REPO,
    env: {
      ...process.env,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${join(REPO, 'test/fixtures/wasm-fault/preload.mjs')}`,
      PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', UPLOAD_RETENTION: 'none', RECORDS_STORE: 'off', RATE_LIMIT_MAX: '0'
    },
    stdio: ['ignore', 'ignore', 'ignore', 'ipc']
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  for (let i = 0; i < 1200; i++) {
    if (await fetch(`${base}/health/live`).then((res) => res.status === 200, () => false)) break
    await sleep(100)
  }

  child.send('fault')
  const outcome = await Promise.race([
    once(child, 'message').then(([message]) => String(message)),
    exited.then(([code, signal]) => `the service exited (code ${String(code)}, signal ${String(signal)})`),
    // a bound on a hang, not on speed: the worker answers at once, or its fault loops forever
    sleep(60_000, 'no answer: the worker is stuck in its fault')
  ])
  t.equal(outcome, 'caught RuntimeError: memory access out of bounds', 'the worker got the error')
  t.equal((await fetch(`${base}/health/live`, { signal: AbortSignal.timeout(10_000) }).then((res) => res.status, () => 0)), 200, 'the service still answers')
  child.kill('SIGTERM')
  const stop = await Promise.race([exited.then(([code]) => code), sleep(30_000, 'still running 30 s after SIGTERM')])
  t.equal(stop, 0, 'and stops as asked')
})
