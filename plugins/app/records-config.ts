import { isAeTitle } from '../../dicom-node/pdu.js'
import { connectionStringFault } from '../../records/postgres-driver.js'
import type { Caller } from '../../records/record.js'
import type { StoreOptions } from '../../records/store.js'
import { SECRET_VARIABLES, secretFrom } from './auth-config.js'

export interface RecordsConfig {
  /** pglite: embedded, under dataDir (the default); postgres: the server at databaseUrl; off: nothing is recorded. */
  store: 'pglite' | 'postgres' | 'off'
  dataDir: string
  /** PGLITE_STALL_LIMIT_S: the embedded database answering no statement this long is stopped (records/pglite-driver.ts). */
  stallLimitMs: number
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
  /** Whether GET /predictions* is served (RECORDS_API, or its default: on with authentication, else on loopback binds without a proxy only). */
  api: boolean
  /** The scope that lets an authenticated caller read every caller's records. */
  readAllScope: string
  /**
   * STUDY_OWNERS: the callers that may own a study (records/study-owner.ts), whose rows alone make its read-all view
   * and its FHIR push; undefined: any caller, the first to have one of its instances classified.
   */
  studyOwners?: Caller[]
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

/**
 * A caller as the records name it: `dicom:<calling AE title>` (as the DICOM node stores it: no leading or trailing
 * space), `api-key:<name>` (a name AUTH_API_KEYS can give: no ':'), `jwt:<sub>`, or `anonymous`.
 */
function isCaller (entry: string): boolean {
  if (entry === 'anonymous') return true
  const colon = entry.indexOf(':')
  if (colon < 0) return false
  const [kind, name] = [entry.slice(0, colon), entry.slice(colon + 1)]
  if (kind === 'dicom') return isAeTitle(name) && name === name.trim()
  if (kind === 'api-key') return name !== '' && !name.includes(':')
  return kind === 'jwt' && name !== ''
}

/**
 * STUDY_OWNERS, comma-separated callers; empty: undefined (any caller may own a study). An entry that names no caller
 * stops start-up: a misspelt prefix would match no record, and the studies it was meant for would have no owner, their
 * read-all view empty and their report never pushed, without a word.
 */
export function studyOwnersOf (text: string): Caller[] | undefined {
  const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
  const wrong = entries.find((entry) => !isCaller(entry))
  if (wrong !== undefined) {
    throw new RecordsConfigError(`STUDY_OWNERS entry ${JSON.stringify(wrong)} names no caller: give callers as the records name them, ` +
      'comma-separated: dicom:<calling AE title>, api-key:<name>, jwt:<sub> or anonymous')
  }
  // Once each, in the order first listed: a repeated entry was read once per listing (its refusals twice in a study).
  return entries.length === 0 ? undefined : [...new Set(entries)]
}

/** The records store these settings open (RECORDS_STORE=off opens none: not called then). */
export function storeOptionsOf ({ store, dataDir, stallLimitMs, databaseUrl, poolSize, timeoutMs, migrationTimeoutMs, studyOwners }: RecordsConfig): StoreOptions {
  return store === 'postgres'
    ? { engine: 'postgres', url: databaseUrl as string, poolSize, timeoutMs, migrationTimeoutMs, studyOwners }
    : { engine: 'pglite', dataDir, stallLimitMs, studyOwners }
}
