// The thread that owns the embedded PGlite database (records/pglite-driver.ts). PGlite runs PostgreSQL compiled to
// WebAssembly synchronously on the thread that calls it: here, each statement runs beside the service's event loop
// instead of blocking it. Plain JavaScript for the same reason as inference/session-worker.js (a worker does not
// inherit a TypeScript loader registered through tsx's API).
import { parentPort, workerData } from 'node:worker_threads'
import { PGlite } from '@electric-sql/pglite'

let db
try {
  db = await PGlite.create(workerData.dataDir)
  await db.exec("SET TIME ZONE 'UTC'")
  parentPort.postMessage({ type: 'ready' })
} catch (error) {
  parentPort.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
  process.exit(1)
}

// Named statements are prepared once and then run with EXECUTE: planning the records INSERT cost as much as running
// it. PGlite's query() always sends an unnamed Parse, and EXECUTE takes no protocol parameters, so the values are
// written as literals, quoted the way pg's escapeLiteral quotes them.
const prepared = new Set()

function literal (value) {
  if (value === null || value === undefined) return 'NULL'
  if (value instanceof Uint8Array) return `'\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}'`
  const text = String(value)
  const quoted = `'${text.replaceAll("'", "''").replaceAll('\\', '\\\\')}'`
  return text.includes('\\') ? ` E${quoted}` : quoted
}

async function run (message) {
  if (message.type === 'exec') {
    await db.exec(message.text)
    return []
  }
  if (message.name === undefined) return (await db.query(message.text, message.params)).rows
  const name = `"${message.name.replaceAll('"', '""')}"`
  if (!prepared.has(name)) {
    await db.exec(`PREPARE ${name} AS ${message.text}`)
    prepared.add(name)
  }
  const args = message.params.length === 0 ? '' : `(${message.params.map(literal).join(', ')})`
  return (await db.query(`EXECUTE ${name}${args}`)).rows
}

// One message at a time, in order (PGlite runs one statement at a time anyway); a close waits for what came before it.
let previous = Promise.resolve()
parentPort.on('message', (message) => { previous = previous.then(async () => await handle(message)) })

async function handle (message) {
  if (message.type === 'close') {
    await db.close()
    parentPort.close()
    return
  }
  try {
    const rows = await run(message)
    parentPort.postMessage({ type: 'result', id: message.id, rows })
  } catch (error) {
    parentPort.postMessage({ type: 'error', id: message.id, message: error instanceof Error ? error.message : String(error), code: error?.code })
  }
}
