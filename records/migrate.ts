import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { SqlDriver } from './sql-driver.js'

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url))
const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/

/** Key of the session advisory lock every instance takes before migrating (any fixed bigint; this one spells "kidney"). */
export const MIGRATION_LOCK_KEY = 0x6b69646e6579

export interface Migration {
  version: number
  name: string
  sql: string
}

/** The numbered plain-SQL files of records/migrations, in order. */
export async function readMigrations (dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((name) => FILE_NAME.test(name)).sort()
  const migrations = await Promise.all(names.map(async (name) => ({
    version: Number(FILE_NAME.exec(name)?.[1]),
    name,
    sql: await readFile(`${dir}/${name}`, 'utf8')
  })))
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`records migrations must be numbered 0001, 0002, ... without gaps: ${m.name}`)
  })
  return migrations
}

/**
 * Applies the migrations this database has not seen, each in its own transaction, and returns the versions applied.
 * The whole check-and-apply runs under one session advisory lock, so replicas starting together wait for the first
 * and then find nothing left to do; running it again is a no-op. Each statement, the wait for the lock included, is
 * bounded by `timeoutMs` (DATABASE_MIGRATION_TIMEOUT_MS) rather than by the writes' timeout: a migration of a large
 * table, or the wait for another replica's, takes longer than any write should.
 */
export async function migrate (driver: SqlDriver, migrations: Migration[], timeoutMs?: number): Promise<number[]> {
  return await driver.withSession(async (session) => {
    await session.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    try {
      await session.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
      const rows = await session.query<{ version: number }>('SELECT version FROM schema_migrations')
      const applied = new Set(rows.map((row) => Number(row.version)))
      const newest = Math.max(0, ...applied)
      if (newest > migrations.length) {
        throw new Error(`the records database is at schema version ${newest}, newer than this service knows (${migrations.length}); upgrade the service`)
      }
      const done: number[] = []
      for (const migration of migrations.filter((m) => !applied.has(m.version))) {
        await session.exec(`BEGIN;\n${migration.sql}\n;INSERT INTO schema_migrations (version, name) VALUES (${migration.version}, '${migration.name}');\nCOMMIT;`)
        done.push(migration.version)
      }
      return done
    } catch (error) {
      await session.exec('ROLLBACK').catch(() => {})
      throw error
    } finally {
      await session.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {})
    }
  }, { timeoutMs })
}
