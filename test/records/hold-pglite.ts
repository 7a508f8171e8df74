import { createInterface } from 'node:readline'
import { RecordStoreError } from '../../records/errors.js'
import { openPGlite } from '../../records/pglite-driver.js'

// Run by test/pglite-lock.test.ts, alone in a new pid namespace as a container's node is: opens the embedded
// database in argv[2] and prints `open <pid>`, or `refused <reason>` and exits 1; holds it until stdin ends, then closes.
// Each line `query` on stdin runs a statement and prints `ok` or `failed <reason>`; a lost lock prints `lost <reason>`.
// With argv[3] `go`, it prints `ready` and opens only once a first line comes: several then start at one moment.
const dataDir = process.argv[2]
const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
if (process.argv[3] === 'go') {
  process.stdout.write('ready\n')
  await input.next()
}
const driver = await openPGlite(dataDir, undefined, (reason) => process.stdout.write(`lost ${reason}\n`)).catch((error: unknown) => {
  process.stdout.write(`refused ${error instanceof RecordStoreError ? error.reason : String(error)}\n`)
  process.exit(1)
})
await driver.query('SELECT 1')
process.stdout.write(`open ${process.pid}\n`)
const statement = async (): Promise<string> => await driver.query('SELECT 1').then(() => 'ok',
  (error: unknown) => `failed ${error instanceof RecordStoreError ? error.reason : String(error)}`)
for await (const line of input) if (line === 'query') process.stdout.write(`${await statement()}\n`)
await driver.close()
