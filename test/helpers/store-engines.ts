import type { Test } from 'tap'
import type { StoreOptions } from '../../records/store.js'
import { emptyPGliteDataDir } from './pglite-template.js'
import { startPostgres } from './postgres.js'

/**
 * The two stores a test of the records core runs on, as RecordStore options: an empty PGlite database in `dataDir`,
 * and the database `database` of a throwaway PostgreSQL server started for the test and removed at its end.
 */
export function storeEngines (dataDir: string, database: string): Array<[string, (t: Test) => Promise<StoreOptions>]> {
  return [
    ['pglite', async () => ({ engine: 'pglite', dataDir: await emptyPGliteDataDir(dataDir) })],
    ['postgres', async (t) => {
      const server = await startPostgres()
      t.teardown(async () => await server.destroy())
      return { engine: 'postgres', url: await server.createDatabase(database), poolSize: 2, timeoutMs: 5_000, migrationTimeoutMs: 60_000 }
    }]
  ]
}
