import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { pidScope } from '../platform/process-owner.js'
import { RecordStoreError } from '../records/errors.js'
import { LOCK_LOST, openPGlite } from '../records/pglite-driver.js'
import { LEASE_REFRESH_MS, LEASE_STALE_MS } from '../records/pglite-lock.js'
import { build, ctKidneyImage, RECORDS_OFF } from './helper.js'
import { predictJson } from './records/suite.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

// PGlite has no lock of its own: DATA_DIR/records.lock keeps a second process out. Containers on one volume all run
// node as pid 1, so a pid alone told nothing (each took the other's lock for its own); the lock is now a lease whose
// holder touches it, and a holder that cannot be asked is waited for until its lease is stale. CI runs as root.
const dir = await mkdtemp(join(tmpdir(), 'kidney-pglite-lock-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const HOLDER = new URL('./records/hold-pglite.ts', import.meta.url).pathname
const ELSEWHERE = 'another-host 00000000-0000-0000-0000-000000000000 pid:[4026531836]'

/** A scope of this machine (our boot id) in another pid namespace: another container's. */
const anotherContainer = async (): Promise<string> => `another-container ${(await pidScope()).split(' ')[1]} pid:[4026531999]`

let dirs = 0
const dataDir = async (): Promise<string> => await emptyPGliteDataDir(join(dir, `data-${dirs++}`))
const lockOf = (dataDir: string): string => join(dataDir, 'records.lock')

/**
 * test/records/hold-pglite.ts alone in a new pid namespace, as a container's node (pid 1): its first line, and when;
 * `next` reads the lines after it ('exited' once it has); `command` runs it (strace). Its own process group, so that
 * SIGSTOP reaches its node.
 */
function contained (t: Test, dataDir: string, args: string[] = [], command: string[] = []): { child: ReturnType<typeof spawn>, line: Promise<{ line: string, at: number }>, next: () => Promise<string>, signal: (signal: NodeJS.Signals) => void } {
  const [program, ...rest] = [...command, 'unshare', '--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, '--import=tsx', HOLDER, dataDir, ...args]
  const child = spawn(program, rest, { stdio: ['pipe', 'pipe', 'inherit'], detached: true })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL') })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const next = async (): Promise<string> => await lines.next().then(({ value, done }) => done === true ? 'exited' : value as string)
  const line = next().then((line) => ({ line, at: Date.now() }))
  return { child, line, next, signal: (signal) => process.kill(-child.pid!, signal) }
}

t.test('two containers on one DATA_DIR: the second is refused while the first holds it, and opens once the first is killed and its lease stale', async (t) => {
  const data = await dataDir()
  const first = contained(t, data)
  t.equal((await first.line).line, 'open 1', 'the first opened, as pid 1 of its namespace')
  const lock = JSON.parse(await readFile(lockOf(data), 'utf8')) as { scope: string, pid: number }
  t.equal(lock.pid, 1)
  t.not(lock.scope, await pidScope(), 'its scope is its own pid namespace')
  const touched = (await stat(lockOf(data))).mtimeMs

  const startedAt = Date.now()
  const second = contained(t, data)
  const refused = await second.line
  t.equal(refused.line, `refused ${data} is in use by process 1 on ${hostname()}: stop that instance first (several instances need a PostgreSQL server, DATABASE_URL)`)
  t.ok(refused.at - startedAt >= LEASE_STALE_MS, 'it waited for the lease to go stale first')
  t.ok((await stat(lockOf(data))).mtimeMs > touched, 'the first kept its lease fresh meanwhile')

  first.child.kill('SIGKILL')
  await once(first.child, 'exit')
  const lastTouched = (await stat(lockOf(data))).mtimeMs
  const third = contained(t, data)
  const opened = await third.line
  t.equal(opened.line, 'open 1', 'a third opened once the killed one\'s lease was stale')
  t.ok(opened.at >= lastTouched + LEASE_STALE_MS, 'not before')
  third.child.stdin!.end()
  t.equal((await once(third.child, 'exit'))[0], 0)
  await t.rejects(stat(lockOf(data)), { code: 'ENOENT' }, 'closed, it removed its lock')
})

t.test('a lock of another container on this machine last touched longer ago than the stale age is taken over at once, and kept fresh', async (t) => {
  const data = await dataDir()
  await writeFile(lockOf(data), JSON.stringify({ scope: await anotherContainer(), pid: 1 }))
  const longAgo = new Date(Date.now() - 2 * LEASE_STALE_MS)
  await utimes(lockOf(data), longAgo, longAgo)
  const startedAt = Date.now()
  const driver = await openPGlite(data)
  t.ok(Date.now() - startedAt < LEASE_STALE_MS, 'not waited for')
  t.same(JSON.parse(await readFile(lockOf(data), 'utf8')), { scope: await pidScope(), pid: process.pid }, 'the lock is ours')
  const written = (await stat(lockOf(data))).mtimeMs
  await new Promise((resolve) => setTimeout(resolve, LEASE_REFRESH_MS + 1000))
  t.ok((await stat(lockOf(data))).mtimeMs > written, 'touched again within the refresh interval')
  await driver.close()
})

t.test('a lock of another host last touched longer ago than the stale age by our clock is waited for: its clock may be behind ours', async (t) => {
  const data = await dataDir()
  const elsewhere = JSON.stringify({ scope: ELSEWHERE, pid: 1 })
  await writeFile(lockOf(data), elsewhere)
  const longAgo = new Date(Date.now() - 2 * LEASE_STALE_MS)
  await utimes(lockOf(data), longAgo, longAgo)
  const opening = openPGlite(data)
  await new Promise((resolve) => setTimeout(resolve, 3_000))
  t.equal(await readFile(lockOf(data), 'utf8'), elsewhere, 'not taken over at once')
  const driver = await opening
  t.same(JSON.parse(await readFile(lockOf(data), 'utf8')), { scope: await pidScope(), pid: process.pid }, 'taken over once seen unchanged for the stale age')
  await driver.close()
})

t.test('a lock of another container or host touched within the stale age is waited for', async (t) => {
  const data = await dataDir()
  await writeFile(lockOf(data), JSON.stringify({ scope: ELSEWHERE, pid: 1 }))
  const touched = (await stat(lockOf(data))).mtimeMs
  const driver = await openPGlite(data)
  t.ok(Date.now() >= touched + LEASE_STALE_MS, 'opened once the lease was stale, not before')
  await driver.close()
})

t.test('a records.lock that is not a file (a directory a volume mount made) is refused, named, and left as it is', async (t) => {
  // On the old code it was taken for an unreadable lock: waited on for the stale age, moved aside to
  // records.lock.<uuid>, then the open failed on Node's 'Path is a directory: rm returned EISDIR' and left it there.
  const data = await dataDir()
  await mkdir(lockOf(data))
  await t.rejects(openPGlite(data), { constructor: RecordStoreError, message: `records store: ${lockOf(data)} is not a file: it is no lock this service wrote; remove it` })
  t.same((await readdir(data)).filter((name) => name.startsWith('records.lock')), ['records.lock'], 'nothing moved aside')
})

t.test('a service stopped while it waits for another\'s lock stops at once, leaving the lock alone', async (t) => {
  const data = await dataDir()
  const elsewhere = JSON.stringify({ scope: ELSEWHERE, pid: 1 })
  await writeFile(lockOf(data), elsewhere)
  const app = await build(t, { config: { records: { ...RECORDS_OFF, store: 'pglite', dataDir: data } } }, { waitForModel: false })
  await app.model.loaded
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.match(ready, { statusCode: 503 })
  // The old message, "Results cannot be recorded right now (the records store is opening); nothing was answered
  // without a record, retry after 5 s.", told a readiness probe that something had been answered.
  t.match(ready.json(), {
    code: 'RECORDS_UNAVAILABLE',
    message: 'Predictions cannot be recorded right now (the records store is opening), and none is answered without its record: retry after 5 s.'
  }, 'not ready while it waits')
  const closing = Date.now()
  await app.close()
  t.ok(Date.now() - closing < LEASE_STALE_MS, 'the wait for the lease was cut')
  await t.resolves(app.records.opened, 'a store closed while opening is no failure that stops the service')
  t.equal(await readFile(lockOf(data), 'utf8'), elsewhere, 'the other\'s lock is left')
})

t.test('a lock of this host written as a plain pid (the version before leases) follows the pid', async (t) => {
  const data = await dataDir()
  const live = spawn('sleep', ['60'])
  t.teardown(() => live.kill())
  await writeFile(lockOf(data), String(live.pid))
  const refused = await openPGlite(data).then(() => undefined, (error: unknown) => error)
  t.type(refused, RecordStoreError)
  t.equal((refused as RecordStoreError).reason, `${data} is in use by process ${live.pid} on ${hostname()}: stop that instance first (several instances need a PostgreSQL server, DATABASE_URL)`)

  live.kill()
  await once(live, 'exit')
  const driver = await openPGlite(data)
  t.same(JSON.parse(await readFile(lockOf(data), 'utf8')), { scope: await pidScope(), pid: process.pid }, 'its pid gone, taken over at once')
  await driver.close()
})

t.test('a holder paused past its lease and taken over neither refreshes nor removes the new lock, and stops using the database', async (t) => {
  const data = await dataDir()
  const first = contained(t, data)
  t.equal((await first.line).line, 'open 1')
  first.signal('SIGSTOP')
  const second = contained(t, data)
  t.equal((await second.line).line, 'open 1', 'the second took the paused one\'s stale lease over')
  const secondLock = await readFile(lockOf(data), 'utf8')
  // the second paused too: from here the lock changes only if the first touches it
  second.signal('SIGSTOP')
  const touched = (await stat(lockOf(data))).mtimeMs
  first.signal('SIGCONT')
  await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_REFRESH_MS))
  t.equal((await stat(lockOf(data))).mtimeMs, touched, 'the first, resumed, did not touch the second\'s lock')
  first.child.stdin!.end('query\n')
  t.equal(await first.next(), `lost ${LOCK_LOST}`, 'it found its lock taken, and said so once')
  t.equal(await first.next(), `failed ${LOCK_LOST}`, 'a statement fails, naming why')
  t.equal(await first.next(), 'exited', 'and then closed')
  t.equal(await readFile(lockOf(data), 'utf8'), secondLock, 'closed, it left the second\'s lock')
  second.signal('SIGCONT')
  second.child.stdin!.end('query\n')
  t.equal(await second.next(), 'ok', 'the second uses the database')
  t.equal(await second.next(), 'exited')
  await t.rejects(stat(lockOf(data)), { code: 'ENOENT' }, 'the second removed its own lock')
})

t.test('a service whose lock was taken over answers 503 saying so, logs it once, and leaves the other\'s lock at close', async (t) => {
  const data = await dataDir()
  const logged: Array<{ level: number, msg: string }> = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { logged.push(JSON.parse(chunk.toString())); done() } })
  const app = await build(t, { logger: { level: 'info', stream }, config: { records: { ...RECORDS_OFF, store: 'pglite', dataDir: data } } })
  await app.records.opened
  const slice = await ctKidneyImage('test/stone')
  t.equal((await predictJson(app, slice)).statusCode, 200)
  // another process's lock where ours was, as a takeover while this one was paused leaves it
  const elsewhere = JSON.stringify({ scope: ELSEWHERE, pid: 1 })
  await writeFile(lockOf(data), elsewhere)
  await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_REFRESH_MS))
  t.match(await predictJson(app, slice), { statusCode: 503, body: { code: 'RECORDS_UNAVAILABLE', message: new RegExp(`\\(${LOCK_LOST}\\)`) } })
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json(), { code: 'RECORDS_UNAVAILABLE', message: new RegExp(`${LOCK_LOST}\\)`) })
  t.equal(logged.filter(({ level, msg }) => level >= 50 && msg.startsWith(`records store: ${LOCK_LOST}:`)).length, 1, 'logged once, as an error')
  await app.close()
  t.equal(await readFile(lockOf(data), 'utf8'), elsewhere, 'the other\'s lock is left')
})

t.test('two waiters on one abandoned lock, the first held up between judging it abandoned and removing it: exactly one opens', async (t) => {
  const data = await dataDir()
  await writeFile(lockOf(data), JSON.stringify({ scope: await anotherContainer(), pid: 1 }))
  const longAgo = new Date(Date.now() - 2 * LEASE_STALE_MS)
  await utimes(lockOf(data), longAgo, longAgo)
  // strace holds each of the first's removals and renames for 3 s before it runs: it has judged the lock abandoned,
  // and the second, let go 1 s later, judges it so too and takes it over meanwhile
  const first = contained(t, data, ['go'], ['strace', '-f', '-o', '/dev/null', '-e', 'inject=unlink,unlinkat,rename,renameat,renameat2:delay_enter=3000000'])
  const second = contained(t, data, ['go'])
  t.equal((await first.line).line, 'ready')
  t.equal((await second.line).line, 'ready')
  first.child.stdin!.write('go\n')
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  second.child.stdin!.write('go\n')
  t.equal(await second.next(), 'open 1', 'the second took it over')
  t.match(await first.next(), /^refused .* is in use by process 1 on /, 'the first, its move finding the second\'s lock, put it back and was refused')
  second.child.stdin!.end()
  t.equal(await second.next(), 'exited')
  t.same((await readdir(data)).filter((name) => name.startsWith('records.lock')), [], 'no lock left, nor any set aside')
})
