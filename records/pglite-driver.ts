import { mkdir, open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import { guarded, RecordStoreError } from './errors.js'
import type { SqlDriver, SqlSession } from './sql-driver.js'

/** The data directories this process has open: PGlite has no lock of its own, and two openers corrupt the files. */
const openHere = new Set<string>()

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * `DATA_DIR/records.lock` holds the pid of the one process using the database; a lock left by a process that
 * is gone is taken over. Several instances need a PostgreSQL server (DATABASE_URL), not a shared PGlite directory.
 */
async function lockDataDir (dataDir: string): Promise<() => Promise<void>> {
  const lockPath = join(dataDir, 'records.lock')
  if (openHere.has(dataDir)) throw new RecordStoreError(`${dataDir} is already open in this process`)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx', 0o600)
      await handle.writeFile(String(process.pid))
      await handle.close()
      openHere.add(dataDir)
      return async () => {
        openHere.delete(dataDir)
        await rm(lockPath, { force: true })
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
        throw new RecordStoreError(`${dataDir} is in use by process ${owner}; run several instances on a PostgreSQL server (DATABASE_URL) instead`)
      }
      await rm(lockPath, { force: true })
    }
  }
  throw new RecordStoreError(`cannot lock ${dataDir}`)
}

function sessionOf (db: PGlite): SqlSession {
  return {
    query: async <R>(text: string, params: unknown[] = []) => await guarded(async () => (await db.query<R>(text, params)).rows),
    exec: async (script: string) => { await guarded(async () => await db.exec(script)) }
  }
}

/**
 * PostgreSQL compiled to WebAssembly, in this process, its files under `dataDir/records`: the default store, so
 * that `npm start` needs nothing else. One connection; PGlite runs one statement at a time.
 * Loaded on demand, so a service on a PostgreSQL server never loads the WebAssembly build.
 */
export async function openPGlite (dataDir: string): Promise<SqlDriver> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const unlock = await lockDataDir(dataDir)
  let db: PGlite
  try {
    const { PGlite } = await import('@electric-sql/pglite')
    db = await PGlite.create(join(dataDir, 'records'))
    await db.exec("SET TIME ZONE 'UTC'")
  } catch (error) {
    await unlock()
    throw error instanceof RecordStoreError ? error : new RecordStoreError(`the embedded database in ${dataDir} cannot be opened`, { cause: error })
  }
  const session = sessionOf(db)
  return {
    engine: 'pglite',
    ...session,
    withSession: async (work) => await work(session),
    close: async () => {
      try {
        await db.close()
      } finally {
        await unlock()
      }
    }
  }
}
