import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { RECORDS_OFF } from './helper.js'
import { recordsSuite } from './records/suite.js'

// The records test set on the embedded store (the default): one PGlite database for the whole file, opened and
// closed by each test's app in turn (creating one costs seconds, and PGlite serves one process at a time).

const dataDir = await mkdtemp(join(tmpdir(), 'kidney-records-pglite-'))
t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))

recordsSuite(t, { engine: 'pglite', records: async () => ({ ...RECORDS_OFF, store: 'pglite', dataDir }) })
