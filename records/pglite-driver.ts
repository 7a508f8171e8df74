import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { guarded, RecordStoreError } from './errors.js'
import { lockDataDir } from './pglite-lock.js'
import type { SqlDriver, SqlSession } from './sql-driver.js'

type WorkerMessage =
  | { type: 'ready' }
  | { type: 'failed', message: string, code?: string }
  | { type: 'result', id: number, rows: unknown[] }
  | { type: 'error', id: number, message: string, code?: string }

/** The database error as the worker saw it: message and SQLSTATE (or a file system error's code), for describeDatabaseError. */
class EmbeddedDatabaseError extends Error {
  constructor (message: string, readonly code?: string) {
    super(message)
  }
}

/** The file system faults an operator fixes at the data directory, in words (the system's code kept for the search). */
const FILE_SYSTEM_FAULTS: Record<string, string> = {
  ENOSPC: 'its file system is full',
  EDQUOT: 'its file system quota is used up',
  EROFS: 'its file system is read-only',
  EACCES: 'the service may not write there',
  EPERM: 'the service may not write there',
  EIO: 'its disk fails to read or write'
}

/** Why `dataDir` cannot be opened, in our words: a full, read-only or forbidden file system named with its code. */
function openFailure (dataDir: string, error: unknown): RecordStoreError {
  if (error instanceof RecordStoreError) return error
  const code = (error as { code?: unknown }).code
  const fault = typeof code === 'string' ? FILE_SYSTEM_FAULTS[code] : undefined
  return new RecordStoreError(`the embedded database in ${dataDir} cannot be opened${fault === undefined ? '' : `: ${fault} (${code as string})`}`, { cause: error })
}

/** Why every statement fails once another process has taken the lock over: what readiness and /predict's 503 say. */
export const LOCK_LOST = 'the embedded database\'s lock was taken by another process'

/**
 * Why every statement fails once the database could not write its write-ahead log (pg_wal): a new segment on a full
 * disk. PostgreSQL stops there (a PANIC: a server restarts its backends and replays the log); PGlite reports the error
 * and then answers no statement again, and its thread cannot even be closed, so without this every records read and
 * write waited for HANDLER_TIMEOUT_MS, readiness included, until the process was killed, space freed or not.
 */
export const WAL_FAILED = 'the embedded database could not write its write-ahead log and was stopped: restart the service (once DATA_DIR has room, if its disk is full)'
const WAL_WRITE = /"pg_wal\//

/**
 * Why every statement fails once the database answered none for its stall limit (PGLITE_STALL_LIMIT_S). Its VACUUM
 * on a full disk was seen to never return, with no error before it: every statement behind it waited, and freeing
 * space did not help. A server is bounded by its statement timeout; PGlite has none, so it is stopped instead.
 */
export function stalledReason (stallLimitMs: number): string {
  return `the embedded database answered no statement for ${Math.round(stallLimitMs / 1000)} s and was stopped: restart the service (once DATA_DIR has room, if its disk is full)`
}
/** The default of PGLITE_STALL_LIMIT_S, in ms. */
const STALL_LIMIT_MS = 600_000

/** Starts the worker that owns the database and waits until it has opened (or created) it. */
async function startWorker (dataDir: string): Promise<Worker> {
  const worker = new Worker(new URL('./pglite-worker.js', import.meta.url), { workerData: { dataDir } })
  const ready = await new Promise<WorkerMessage>((resolve, reject) => {
    const onExit = (code: number): void => reject(new Error(`the embedded database thread exited (code ${code}) while opening`))
    worker.once('error', reject).once('exit', onExit).once('message', (message: WorkerMessage) => {
      worker.off('error', reject).off('exit', onExit)
      resolve(message)
    })
  })
  if (ready.type !== 'ready') {
    await worker.terminate()
    if (ready.type === 'failed') throw new EmbeddedDatabaseError(ready.message, ready.code)
    throw new Error(`unexpected message from the embedded database thread: ${ready.type}`)
  }
  return worker
}

async function stopWorker (worker: Worker): Promise<void> {
  await new Promise<void>((resolve) => {
    worker.once('exit', () => resolve())
    worker.postMessage({ type: 'close' })
  })
}

/**
 * PostgreSQL compiled to WebAssembly, its files under `dataDir/records`: the default store, so that `npm start` needs
 * nothing else. It runs in a worker thread (records/pglite-worker.js): a statement costs the event loop only the
 * message to and from it. One connection; PGlite runs one statement at a time.
 *
 * Aborting `signal` ends a wait for another instance's lock (records/pglite-lock.ts). Should the lock be taken over
 * by another process (this one was paused past its lease), the worker is stopped at once, every statement from then
 * on fails with LOCK_LOST, and `lost` is told, once; so it is when the database could not write its log (WAL_FAILED),
 * and when a statement has waited `stallLimitMs` for its answer (stalledReason).
 *
 * A new database is created by a first worker that then exits: initdb leaves PGlite's WebAssembly memory at about
 * 800 MB, which only a new instance gives back (an existing database opens in about 300 MB).
 */
export async function openPGlite (dataDir: string, signal?: AbortSignal, lost?: (reason: string) => void, stallLimitMs = STALL_LIMIT_MS): Promise<SqlDriver> {
  let unlock: () => Promise<void>
  let started: Worker | undefined
  let stopped: Error | undefined
  const lockLost = (): void => {
    stopped = new RecordStoreError(LOCK_LOST)
    lost?.(LOCK_LOST)
    void started?.terminate()
  }
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    unlock = await lockDataDir(dataDir, signal, lockLost)
  } catch (error) {
    throw openFailure(dataDir, error)
  }
  try {
    const databaseDir = join(dataDir, 'records')
    // A creation cut short (a full disk) leaves no PG_VERSION, so the next start creates the database again over it.
    if (!existsSync(join(databaseDir, 'PG_VERSION'))) await stopWorker(await startWorker(databaseDir))
    started = await startWorker(databaseDir)
    // taken over while the database was being opened
    if (stopped !== undefined) {
      await started.terminate()
      throw stopped
    }
  } catch (error) {
    await unlock()
    throw openFailure(dataDir, error)
  }
  const worker = started
  const pending = new Map<number, { resolve: (rows: unknown[]) => void, reject: (error: Error) => void, sentAt: number }>()
  let nextId = 0
  let closing = false
  const stop = (reason: string): void => {
    // the statements sent behind it fail with the reason as the thread exits (below), and every later one at once
    stopped = new RecordStoreError(reason)
    lost?.(reason)
    void worker.terminate()
  }
  // PGlite answers in the order it was sent: the oldest pending statement is the one it is running.
  const watchdog = setInterval(() => {
    const [oldest] = pending.values()
    if (oldest !== undefined && stopped === undefined && performance.now() - oldest.sentAt >= stallLimitMs) stop(stalledReason(stallLimitMs))
  }, Math.min(5_000, stallLimitMs / 4)).unref()
  worker.on('message', (message: WorkerMessage) => {
    if (message.type !== 'result' && message.type !== 'error') return
    const call = pending.get(message.id)
    pending.delete(message.id)
    if (message.type === 'result') call?.resolve(message.rows)
    else call?.reject(new EmbeddedDatabaseError(message.message, message.code))
    if (message.type === 'error' && WAL_WRITE.test(message.message) && stopped === undefined) stop(WAL_FAILED)
  })
  worker.on('exit', (code) => {
    clearInterval(watchdog)
    stopped ??= new Error(closing ? 'the embedded database is closed' : `the embedded database thread exited (code ${code})`)
    for (const call of pending.values()) call.reject(stopped)
    pending.clear()
  })
  const call = async (type: 'query' | 'exec', text: string, params: unknown[] = [], name?: string): Promise<unknown[]> => await guarded(async () => {
    if (stopped !== undefined) throw stopped
    const id = nextId++
    return await new Promise<unknown[]>((resolve, reject) => {
      pending.set(id, { resolve, reject, sentAt: performance.now() })
      worker.postMessage({ type, id, text, params, name })
    })
  })
  const session: SqlSession = {
    query: async <R>(text: string, params: unknown[] = [], name?: string) => await call('query', text, params, name) as R[],
    exec: async (script: string) => { await call('exec', script) }
  }
  return {
    engine: 'pglite',
    ...session,
    withSession: async (work) => await work(session),
    close: async () => {
      closing = true
      try {
        if (stopped === undefined) await stopWorker(worker)
      } finally {
        await unlock()
      }
    }
  }
}
