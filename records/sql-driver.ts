/** What the store needs from a PostgreSQL connection, whichever engine runs it (PGlite in-process, or a server). */
export interface SqlSession {
  /** One statement with `$n` parameters. A `name` lets the driver prepare it once per connection and reuse it. */
  query: <R = Record<string, unknown>>(text: string, params?: unknown[], name?: string) => Promise<R[]>
  /** Several statements without parameters (a migration file). */
  exec: (script: string) => Promise<void>
}

export interface SessionOptions {
  /** Each statement of this session may take this long instead of the driver's timeout (a server's; PGlite has none). */
  timeoutMs?: number
}

export interface SqlDriver extends SqlSession {
  readonly engine: 'pglite' | 'postgres'
  /** Runs `work` on one connection held for its duration: session-level advisory locks and transactions need that. */
  withSession: <T>(work: (session: SqlSession) => Promise<T>, options?: SessionOptions) => Promise<T>
  close: () => Promise<void>
}
