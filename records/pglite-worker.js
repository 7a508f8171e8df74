// The thread that owns the embedded PGlite database (records/pglite-driver.ts). PGlite runs PostgreSQL compiled to
// WebAssembly synchronously on the thread that calls it: here, each statement runs beside the service's event loop
// instead of blocking it. Plain JavaScript for the same reason as inference/session-worker.js (a worker does not
// inherit a TypeScript loader registered through tsx's API).
import { parentPort, workerData } from 'node:worker_threads'
import { PGlite, parse, protocol } from '@electric-sql/pglite'

/**
 * A file system error inside PGlite is Emscripten's ErrnoError: no Error, no message, only Emscripten's own errno
 * number (not the system's), so a database that could not be created on a full disk was reported as '[object
 * Object]'. The numbers of the errors an operator can fix, from Emscripten's ERRNO_CODES, back to their names.
 */
const EMSCRIPTEN_ERRNO = { 2: 'EACCES', 19: 'EDQUOT', 29: 'EIO', 44: 'ENOENT', 51: 'ENOSPC', 63: 'EPERM', 69: 'EROFS' }

/** What went wrong, for the driver: a message and, for a file system error, the system's code (ENOSPC, EROFS, ...). */
function described (error) {
  if (error instanceof Error) return { message: error.message, code: error.code }
  const errno = error?.name === 'ErrnoError' ? error.errno : undefined
  if (errno === undefined) return { message: String(error) }
  const code = EMSCRIPTEN_ERRNO[errno]
  return { message: `file system error ${code ?? `(Emscripten errno ${errno})`}`, code }
}

let db
try {
  db = await PGlite.create(workerData.dataDir)
  await db.exec("SET TIME ZONE 'UTC'")
  parentPort.postMessage({ type: 'ready' })
} catch (error) {
  parentPort.postMessage({ type: 'failed', ...described(error) })
  process.exit(1)
}

// Named statements are prepared once (a protocol Parse with the name) and then run with one protocol message of Bind,
// Describe, Execute and Sync: planning the records INSERT cost as much as running it. PGlite's query() sends the
// same steps as six separate calls into the database and parses the statement text every time; here the values
// travel as protocol parameters (text format, as pg sends them), never inside SQL text.
const prepared = new Set()

function concat (parts) {
  const bytes = new Uint8Array(parts.reduce((n, part) => n + part.length, 0))
  let at = 0
  for (const part of parts) {
    bytes.set(part, at)
    at += part.length
  }
  return bytes
}

/**
 * A parameter in PostgreSQL's text format: bytea as its hex form, a Date as ISO 8601, a plain object as JSON text
 * (for json parameters). Arrays and other objects are refused rather than sent in a form their column type would
 * misread (an array literal is not JSON).
 */
function textValue (value) {
  if (value === null || value === undefined) return null
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`
  if (value instanceof Date) return value.toISOString()
  if (typeof value !== 'object') return String(value)
  if (Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new TypeError(`a ${value.constructor?.name ?? 'null-prototype'} parameter has no text form here`)
  }
  return JSON.stringify(value)
}

async function run (message) {
  if (message.type === 'exec') {
    await db.exec(message.text)
    return []
  }
  if (message.name === undefined) return (await db.query(message.text, message.params)).rows
  if (!prepared.has(message.name)) {
    await db.execProtocol(concat([protocol.serialize.parse({ name: message.name, text: message.text }), protocol.serialize.sync()]))
    prepared.add(message.name)
  }
  const { messages } = await db.execProtocol(concat([
    protocol.serialize.bind({ statement: message.name, values: message.params.map(textValue) }),
    protocol.serialize.describe({ type: 'P' }),
    protocol.serialize.execute({}),
    protocol.serialize.sync()
  ]))
  return parse.parseResults(messages, db.parsers)[0]?.rows ?? []
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
    parentPort.postMessage({ type: 'error', id: message.id, ...described(error) })
  }
}
