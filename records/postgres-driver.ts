import { Socket } from 'node:net'
import pg from 'pg'
import { guarded } from './errors.js'
import type { SqlDriver, SqlSession } from './sql-driver.js'

/** How much longer than the server's statement_timeout the client waits for an answer (a hung server, a lost link). */
const CLIENT_WAIT_MARGIN_MS = 1_000

export interface PostgresOptions {
  url: string
  poolSize: number
  /** Connecting, and any one statement, may take this long before the write fails (and /predict answers 503). */
  timeoutMs: number
  onPoolError?: (error: Error) => void
  /**
   * Aborting it ends the pool at once: a connection that is connecting or waiting on a statement fails now instead of
   * after timeoutMs (a service stopping while the server hangs), and no new one is made.
   */
  signal?: AbortSignal
}

/** `waitMs`: how long the client waits for each answer, when not the pool's query_timeout. */
function sessionOf (client: pg.Pool | pg.PoolClient, waitMs?: number): SqlSession {
  const wait = waitMs === undefined ? {} : { query_timeout: waitMs }
  return {
    query: async <R>(text: string, params: unknown[] = [], name?: string) =>
      await guarded(async () => (await client.query({ text, values: params, ...(name === undefined ? {} : { name }), ...wait })).rows as R[]),
    exec: async (script: string) => { await guarded(async () => await client.query({ text: script, ...wait })) }
  }
}

/**
 * Each connection's socket is destroyed on abort, whatever the connection is waiting for. The listener goes with the
 * socket: the pool makes new connections for as long as it lives (net.Socket's own `signal` option never removes its
 * listener, so every reconnect would leave one behind on the signal, holding its closed socket).
 */
function followSignal (socket: Socket, signal: AbortSignal | undefined): Socket {
  if (signal === undefined) return socket
  const cut = (): void => { socket.destroy() }
  signal.addEventListener('abort', cut, { once: true })
  socket.once('close', () => signal.removeEventListener('abort', cut))
  return socket
}

/**
 * Why pg cannot use this connection string, or undefined when it can. Its pool reads it only at the first connection,
 * so a URL it cannot parse (a password with / or #, a port above 65535) started the service and failed every write as
 * "the database cannot be reached: Invalid URL". A Client parses it in its constructor and connects to nothing; the
 * parse also reads the files that sslrootcert, sslcert and sslkey name, and a file it cannot read (a secret not
 * mounted) is that fault, not the URL's spelling. Neither message holds the URL: it may carry a password.
 */
export function connectionStringFault (url: string): string | undefined {
  try {
    new pg.Client({ connectionString: url }) // eslint-disable-line no-new
    return undefined
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      return `names a file the service cannot read (${code}): check its sslrootcert, sslcert and sslkey`
    }
    return 'cannot be read as a URL: percent-encode a user name or password holding / ? # @ [ ] % (encodeURIComponent), ' +
      'and give a port from 1 to 65535'
  }
}

/**
 * A PostgreSQL server through a `pg` pool: what several instances share. Sessions run in UTC; named statements are
 * prepared once per pooled connection. A server that goes away fails the statements in flight (typed, never a
 * crash: the pool's idle-client errors are reported to `onPoolError`), and the pool reconnects once it is back.
 */
export async function openPostgres (options: PostgresOptions): Promise<SqlDriver> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    connectionTimeoutMillis: options.timeoutMs,
    // query_timeout only stops the client waiting: the server's statement went on, and an INSERT held up by a lock
    // committed after its /predict had been answered 503 (and its upload removed). The server's own statement_timeout
    // rolls it back; the client waits a little longer, so that the server's cancel comes first.
    query_timeout: options.timeoutMs + CLIENT_WAIT_MARGIN_MS,
    idleTimeoutMillis: 30_000,
    application_name: 'kidney-stone-service',
    options: `-c TimeZone=UTC -c statement_timeout=${options.timeoutMs}`,
    stream: () => followSignal(new Socket(), options.signal)
  })
  pool.on('error', (error) => options.onPoolError?.(error))
  let ended: Promise<void> | undefined
  const end = async (): Promise<void> => { await (ended ??= pool.end()) }
  options.signal?.addEventListener('abort', () => { end().catch(() => {}) }, { once: true })
  const session = sessionOf(pool)
  try {
    await session.query('SELECT 1')
  } catch (error) {
    await end().catch(() => {})
    throw error
  }
  return {
    engine: 'postgres',
    ...session,
    withSession: async (work, { timeoutMs } = {}) => {
      const client = await guarded(async () => await pool.connect())
      // A checked-out client whose socket fails (an abort destroys it) emits 'error' besides failing its statement; the
      // pool listens only to idle clients, and an unheard 'error' would end the process.
      let failed = false
      const broken = (): void => { failed = true }
      client.on('error', broken)
      try {
        if (timeoutMs === undefined) return await work(sessionOf(client))
        await guarded(async () => await client.query('SELECT set_config($1, $2, false)', ['statement_timeout', String(timeoutMs)]))
        return await work(sessionOf(client, timeoutMs + CLIENT_WAIT_MARGIN_MS))
      } catch (error) {
        failed = true
        throw error
      } finally {
        // A connection that failed mid-work is dropped rather than handed to the next caller, and so is one with a
        // timeout of its own: a write on it would not be bounded by DATABASE_TIMEOUT_MS.
        client.off('error', broken)
        client.release(failed || timeoutMs !== undefined)
      }
    },
    close: end
  }
}
