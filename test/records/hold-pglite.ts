import { RecordStoreError } from '../../records/errors.js'
import { openPGlite } from '../../records/pglite-driver.js'

// Run by test/pglite-lock.test.ts, alone in a new pid namespace as a container's node is: opens the embedded
// database in argv[2] and prints `open <pid>`, or `refused <reason>` and exits 1; holds it until stdin ends, then closes.
const dataDir = process.argv[2]
const driver = await openPGlite(dataDir).catch((error: unknown) => {
  process.stdout.write(`refused ${error instanceof RecordStoreError ? error.reason : String(error)}\n`)
  process.exit(1)
})
await driver.query('SELECT 1')
process.stdout.write(`open ${process.pid}\n`)
process.stdin.resume()
process.stdin.once('end', () => { void driver.close() })
