import { connectionStringFault } from '../../records/postgres-driver.js'
import { SECRET_VARIABLES, secretFrom } from './auth-config.js'

export interface RecordsConfig {
  /** pglite: embedded, under dataDir (the default); postgres: the server at databaseUrl; off: nothing is recorded. */
  store: 'pglite' | 'postgres' | 'off'
  dataDir: string
  /** A secret (it may carry a password): never logged. */
  databaseUrl?: string
  poolSize: number
  /** Connect and statement timeout for the PostgreSQL server. */
  timeoutMs: number
  /** Statement timeout of the migrations at start-up, the wait for another replica's included. */
  migrationTimeoutMs: number
  /** How long records and audit events are kept; 0 keeps them forever. */
  retentionMs: number
  /** true: a prediction that cannot be recorded is answered 503 RECORDS_UNAVAILABLE; false: answered, the loss logged and counted. */
  required: boolean
  /** Whether GET /predictions* is served (RECORDS_API, or its default: on with authentication, else on loopback binds only). */
  api: boolean
  /** The scope that lets an authenticated caller read every caller's records. */
  readAllScope: string
}

export class RecordsConfigError extends Error {}

/** 127.0.0.0/8, ::1 and localhost: only this machine can reach the service. */
export function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127(\.\d{1,3}){3}$/.test(host)
}

/**
 * The store follows DATABASE_URL (a secret: read from the variable or DATABASE_URL_FILE, never echoed) unless
 * RECORDS_STORE says otherwise: a PostgreSQL server when it is set, the embedded PGlite database when it is not.
 */
export function loadRecordsConfig (env: NodeJS.ProcessEnv, settings: Omit<RecordsConfig, 'store' | 'databaseUrl'> & { store?: RecordsConfig['store'] }): RecordsConfig {
  const databaseUrl = secretFrom(env, SECRET_VARIABLES.databaseUrl)
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\/\S+$/.test(databaseUrl)) {
    throw new RecordsConfigError('DATABASE_URL must be a postgres:// or postgresql:// URL')
  }
  const fault = databaseUrl === undefined ? undefined : connectionStringFault(databaseUrl)
  if (fault !== undefined) throw new RecordsConfigError(`DATABASE_URL ${fault}`)
  const store = settings.store ?? (databaseUrl !== undefined ? 'postgres' : 'pglite')
  if (store === 'postgres' && databaseUrl === undefined) throw new RecordsConfigError('RECORDS_STORE=postgres needs DATABASE_URL (or DATABASE_URL_FILE)')
  return { ...settings, store, databaseUrl }
}
