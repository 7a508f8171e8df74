import { randomUUID } from 'node:crypto'
import { link, lstat, open, readFile, rename, rm, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ownerGone, parseOwner, pidScope, sameMachine, thisProcess, type ProcessOwner } from '../platform/process-owner.js'
import { RecordStoreError } from './errors.js'

/**
 * The lock is a lease: its holder touches the file's mtime every LEASE_REFRESH_MS, and a lock whose holder cannot be
 * asked (another container or host) is abandoned once untouched for LEASE_STALE_MS. The refresh is a timer of the
 * event loop, so it is late only while the loop is blocked, and a healthy service's never is for long: inference,
 * DICOM decoding and SQL run in worker threads; the longest block is converting a Keras MODEL_PATH at start (a 200 MB
 * archive, 7.7 s on a busy 2-core machine: inference/keras/work-dir.ts); Kubernetes' liveness probe restarts a pod
 * whose loop has not answered for 30 s. A container restarted after a crash (a new pid namespace) waits this long at
 * most to reopen its own database.
 */
export const LEASE_REFRESH_MS = 5_000
export const LEASE_STALE_MS = 30_000
/** How often a lock held elsewhere is looked at again. */
const POLL_MS = 1_000
/** How long it may stay fresh before the open gives up: past the stale age, so that a holder killed as we start is outlived. */
const WAIT_MS = LEASE_STALE_MS + LEASE_REFRESH_MS

/** The data directories this process has open: PGlite has no lock of its own, and two openers corrupt the files. */
const openHere = new Set<string>()

interface Lock {
  /** Undefined for a file that says nothing: being written by its creator, or cut short. */
  owner?: ProcessOwner
  mtimeMs: number
  /** Which file: a lock replaced meanwhile is another, whatever it holds. */
  ino: number
}

/** The lock's holder and mtime, undefined if it is gone. A plain pid is the lock of the version before leases, of this host. */
async function readLock (lockPath: string): Promise<Lock | undefined> {
  const stats = await lstat(lockPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw error
  })
  if (stats === undefined) return undefined
  // Never a lock this service wrote (a directory a volume mount made, a symbolic link): taken for an unreadable lock,
  // a directory was waited on for the stale age, then moved aside and left, with Node's EISDIR as the only word.
  if (!stats.isFile()) throw new RecordStoreError(`${lockPath} is not a file: it is no lock this service wrote; remove it`)
  const text = (await readFile(lockPath, 'utf8').catch(() => '')).trim()
  const owner = /^[1-9]\d*$/.test(text) ? { scope: await pidScope(), pid: Number(text) } : parseOwner(text)
  return { owner, mtimeMs: stats.mtimeMs, ino: stats.ino }
}

/** Creates the lock holding `content`, false if there is one; one that cannot be written (a full disk) is removed. */
async function create (lockPath: string, content: string): Promise<boolean> {
  let handle
  try {
    handle = await open(lockPath, 'wx', 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
  try {
    await handle.writeFile(content)
  } catch (error) {
    // no empty lock left behind, nor its file descriptor
    await rm(lockPath, { force: true })
    throw error
  } finally {
    await handle.close()
  }
  return true
}

/**
 * Removes `lock`, judged abandoned, so that the next create takes its place, but only if it is still that file: two
 * waiters that judged it so would otherwise both remove and create, the second removing the first's new lock, and
 * both open. It is moved to a name of its own (a rename is atomic: of two waiters, one moves it, the other finds
 * nothing or the first's new lock); a file moved that is not the one judged (another's new lock, or one its holder
 * touched meanwhile) is put back by a link, which never replaces a lock created in between.
 */
async function setAside (lockPath: string, lock: Lock): Promise<void> {
  const aside = `${lockPath}.${randomUUID()}`
  try {
    await rename(lockPath, aside)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  try {
    const moved = await lstat(aside)
    if (moved.ino !== lock.ino || moved.mtimeMs !== lock.mtimeMs) await link(aside, lockPath).catch(() => {})
  } finally {
    await rm(aside, { force: true })
  }
}

function refusal (dataDir: string, lock: Lock, now: number): RecordStoreError {
  const holder = lock.owner === undefined
    ? `a process that left records.lock unreadable, touched ${Math.round((now - lock.mtimeMs) / 1000)} s ago`
    : `process ${lock.owner.pid} on ${lock.owner.scope.split(' ')[0]}`
  return new RecordStoreError(`${dataDir} is in use by ${holder}: stop that instance first (several instances need a PostgreSQL server, DATABASE_URL)`)
}

/**
 * `DATA_DIR/records.lock` holds `{ scope, pid }` of the one process using the database (see pidScope). A lock of this
 * scope is taken over when its pid is gone (or is ours: a restarted container's node is pid 1 again); one whose
 * holder cannot be asked once its lease is stale, waited for while it is fresh, for a little longer than the stale
 * age, and refused if it stays so; aborting `signal` ends the wait. Several instances need a PostgreSQL server
 * (DATABASE_URL), not a shared directory. `lost` is called, once, when the holder finds the lock is no longer the one it
 * wrote (taken over while it was paused, or removed): the database is another's from then on.
 */
export async function lockDataDir (dataDir: string, signal?: AbortSignal, lost?: () => void): Promise<() => Promise<void>> {
  if (openHere.has(dataDir)) throw new RecordStoreError(`${dataDir} is already open in this process`)
  const lockPath = join(dataDir, 'records.lock')
  const content = JSON.stringify(await thisProcess())
  const giveUpAt = Date.now() + WAIT_MS
  // The mtime seen and since when by this clock: a lock that stops changing goes stale whatever its writer's clock.
  // One already older than the stale age by ours goes at once only if written on this machine (another container):
  // another host's clock may be behind ours, and its holder alive.
  let seen = { mtimeMs: NaN, since: 0 }
  while (!await create(lockPath, content)) {
    const lock = await readLock(lockPath)
    // gone meanwhile: its holder closed
    if (lock === undefined) continue
    const now = Date.now()
    const gone = lock.owner === undefined ? undefined : await ownerGone(lock.owner)
    if (gone === false) throw refusal(dataDir, lock, now)
    if (gone === undefined) {
      if (lock.mtimeMs !== seen.mtimeMs) seen = { mtimeMs: lock.mtimeMs, since: now }
      const oldByOurClock = now - lock.mtimeMs >= LEASE_STALE_MS && lock.owner !== undefined && await sameMachine(lock.owner.scope)
      if (!oldByOurClock && now - seen.since < LEASE_STALE_MS) {
        if (now >= giveUpAt) throw refusal(dataDir, lock, now)
        await sleep(POLL_MS, undefined, { signal }).catch(() => {
          throw new RecordStoreError('the records store was closed while opening')
        })
        continue
      }
    }
    await setAside(lockPath, lock)
  }
  openHere.add(dataDir)
  // Ours while the file holds what we wrote: a holder paused past the stale age (SIGSTOP, docker pause) has lost it
  // to another process when it resumes, and must neither keep that one's lease fresh nor remove it.
  let held = true
  const ours = async (): Promise<boolean | undefined> => await readFile(lockPath, 'utf8').then((text) => text === content,
    (error: NodeJS.ErrnoException) => error.code === 'ENOENT' ? false : undefined)
  const refresh = setInterval(() => {
    void ours().then(async (still) => {
      // a read or a refresh that fails (a disk fault) is tried again at the next: the lease goes stale only after several
      if (still === true) await utimes(lockPath, new Date(), new Date()).catch(() => {})
      if (still !== false || !held) return
      held = false
      clearInterval(refresh)
      lost?.()
    })
  }, LEASE_REFRESH_MS).unref()
  return async () => {
    clearInterval(refresh)
    openHere.delete(dataDir)
    if (!held) return
    held = false
    // one that cannot be read is left: it goes stale
    if (await ours() === true) await rm(lockPath, { force: true })
  }
}
