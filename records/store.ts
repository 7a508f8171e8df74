import { performance } from 'node:perf_hooks'
import { isRowFault, RecordStoreError } from './errors.js'
import { GroupWriter, MAX_QUEUED_MS } from './group-writer.js'
import { INSERT_AUDIT_EVENTS, INSERT_FAILED_INSTANCES, INSERT_PREDICTIONS } from './insert-statements.js'
import { CHECKPOINT_STATEMENT, VACUUM_STATEMENT } from './maintenance.js'
import { migrate, readMigrations } from './migrate.js'
import { CREATED_AT_US, pageOf, pageSql, type PageQuery } from './page.js'
import { openPGlite } from './pglite-driver.js'
import { openPostgres } from './postgres-driver.js'
import { PushQueue } from './push-queue.js'
import { callersParam, FORGET_STUDY_OWNERS_SQL, forgetStudyOwnersSql, keepStudyOwnersSql, studyOwnerSql } from './study-owner.js'
import { auditRow, failedInstanceRow, fromAuditRow, fromPredictionRow, predictionRow, type AuditEvent, type AuditRow, type Caller, type FailedInstanceRecord, type PredictionRecord, type PredictionRow } from './record.js'
import type { SqlDriver } from './sql-driver.js'
import { MAX_STUDY_ROWS, STUDY_FAILURES_SQL, STUDY_INSTANCES_SQL, type StudyFailureRow, type StudyInstanceRow, type StudyRows } from './study-rows.js'

export type StoreOptions = (
  | { engine: 'pglite', dataDir: string, stallLimitMs?: number }
  | { engine: 'postgres', url: string, poolSize: number, timeoutMs: number, migrationTimeoutMs: number }
) & {
  /** STUDY_OWNERS: the callers that may own a study (study-owner.ts), for its read-all view and its FHIR push; unset: any. */
  studyOwners?: readonly Caller[]
}

export interface StoreHooks {
  /** After each group write: how many rows of which kind, and how long the statement took. */
  written?: (kind: RecordKind, rows: number, ms: number) => void
  /** An idle pooled server connection failed (the server went away); the next statement reconnects. */
  connectionError?: (error: Error) => void
  /**
   * The store can be used no more, and why: the embedded database's lock was taken by another process, it could not
   * write its log, or it answered no statement for its stall limit.
   */
  lost?: (reason: string) => void
}

/** deletePrediction's statement: the record, and what was kept of its study if it was the last (study-owner.ts). */
export const DELETE_PREDICTION_SQL = 'WITH gone AS (DELETE FROM predictions WHERE id = $1::uuid RETURNING id, study_instance_uid) ' +
  forgetStudyOwnersSql('gone')

/** What the store writes, as the write hooks and metrics name it. */
export const RECORD_KINDS = ['prediction', 'audit', 'failed-instance'] as const
export type RecordKind = typeof RECORD_KINDS[number]

/** A recorded answer as GET /predictions/{id} returns it. */
export interface StoredPrediction {
  /** The /predict answer, exactly as it was sent. */
  answer: Record<string, unknown>
  /** ISO 8601, UTC, milliseconds. */
  createdAt: string
  caller: Caller
}

export interface PredictionQuery extends Omit<PageQuery, 'equal'> {
  prediction?: string
  studyInstanceUid?: string
}

export interface AuditQuery extends Omit<PageQuery, 'equal'> {
  code?: string
}

export interface AuditPage {
  items: AuditEvent[]
  /** Present when there may be more: pass it back as `cursor`. */
  next?: string
}

export interface PredictionPage {
  items: StoredPrediction[]
  /** Present when there may be more: pass it back as `cursor`. */
  next?: string
}

const MAX_GROUP = 64
const BACKGROUND_MAX_QUEUED_MS = 3_600_000

/**
 * The longest from a row's created_at to its commit, which the FHIR push sweep's overlap covers (push-queue.ts). The row
 * is stamped just before it is queued and is sent within MAX_QUEUED_MS (group-writer.ts). A server then takes up to
 * timeoutMs to hand it a pooled connection (connectionTimeoutMillis) and up to timeoutMs for the statement
 * (statement_timeout: past it the server rolls the write back; its commit is not timed, see below). PGlite runs statements one at a time in the
 * order they were sent, so a row sent before a sweep's statement is seen by that sweep: only its wait to be sent counts.
 * Not bounded: a commit that stalls in itself (a disk, a synchronous standby), on either store.
 */
export function latestCommitMs (options: StoreOptions): number {
  return MAX_QUEUED_MS + (options.engine === 'postgres' ? 2 * options.timeoutMs : 0)
}

interface StoredRow { answer: Record<string, unknown> | string, caller: string, created_at: string, id: string }

function storedPrediction (row: StoredRow): StoredPrediction {
  return {
    answer: typeof row.answer === 'string' ? JSON.parse(row.answer) : row.answer,
    createdAt: `${row.created_at.slice(0, 23)}Z`,
    caller: row.caller
  }
}

/**
 * The records store: prediction records and audit events in PostgreSQL, embedded (PGlite) or a server (pg), with
 * the same SQL and the same migrations on both. Writes are group-committed (GroupWriter): one prepared INSERT per
 * group, whatever its size. HTTP-free: the service's plugin, tests and benchmarks use it alike.
 */
export class RecordStore {
  private readonly predictions: GroupWriter<PredictionRecord>
  private readonly auditEvents: GroupWriter<AuditEvent>
  private readonly failedInstances: GroupWriter<FailedInstanceRecord>
  /** The FHIR push queue of final studies (records/push-queue.ts). */
  readonly pushes: PushQueue

  /**
   * `writesInFlight`: prediction writes that may run at once (a server pool commits them side by side). `studyOwners`:
   * StoreOptions' as a text[] parameter (null: any caller), one value for the study view and the push alike.
   * `commitMs`: latestCommitMs, for the push sweep.
   */
  private constructor (private readonly driver: SqlDriver, private readonly hooks: StoreHooks, writesInFlight: number, private readonly studyOwners: string | null, commitMs: number) {
    this.predictions = new GroupWriter(async (records) => await this.insert('prediction', INSERT_PREDICTIONS, records.map(predictionRow)), MAX_GROUP, writesInFlight, isRowFault)
    // Only predictions must commit within latestCommitMs (the push sweep finds studies by them): an audit event or a
    // refused instance may wait an hour, not dropped in a short slowdown; not forever, or refusals during a long
    // outage (the 503s it causes among them) would fill the heap.
    this.auditEvents = new GroupWriter(async (events) => await this.insert('audit', INSERT_AUDIT_EVENTS, events.map(auditRow)), MAX_GROUP, 1, isRowFault, BACKGROUND_MAX_QUEUED_MS)
    this.pushes = new PushQueue(driver, studyOwners, commitMs)
    this.failedInstances = new GroupWriter(async (records) => await this.insert('failed-instance', INSERT_FAILED_INSTANCES, records.map(failedInstanceRow)), MAX_GROUP, 1, isRowFault, BACKGROUND_MAX_QUEUED_MS)
  }

  /**
   * Connects (or opens the embedded database) and applies pending migrations; `applied` lists the versions this call
   * applied. Aborting `signal` while a server is being connected to or migrated cuts its connections and fails the
   * open at once, as it does a wait for another instance's lock on the embedded database (an opened store is closed
   * with close(), which lets its writes finish).
   */
  static async open (options: StoreOptions, hooks: StoreHooks = {}, signal?: AbortSignal): Promise<{ store: RecordStore, applied: number[] }> {
    if (signal?.aborted === true) throw new RecordStoreError('the records store was closed while opening')
    // follows `signal` only until the store is open
    const opening = new AbortController()
    const cut = (): void => opening.abort()
    signal?.addEventListener('abort', cut, { once: true })
    try {
      const migrations = await readMigrations()
      const driver = options.engine === 'pglite'
        ? await openPGlite(options.dataDir, opening.signal, hooks.lost, options.stallLimitMs)
        : await openPostgres({ ...options, onPoolError: hooks.connectionError, signal: opening.signal })
      try {
        const applied = await migrate(driver, migrations, options.engine === 'postgres' ? options.migrationTimeoutMs : undefined)
        // one pooled connection is left for reads, the sweep and the push queue; PGlite has one connection
        const writesInFlight = options.engine === 'postgres' ? Math.max(1, options.poolSize - 1) : 1
        return { store: new RecordStore(driver, hooks, writesInFlight, callersParam(options.studyOwners), latestCommitMs(options)), applied }
      } catch (error) {
        await driver.close().catch(() => {})
        throw error instanceof RecordStoreError ? error : new RecordStoreError(`migrations failed: ${(error as Error).message}`, { cause: error })
      }
    } finally {
      signal?.removeEventListener('abort', cut)
    }
  }

  get engine (): SqlDriver['engine'] {
    return this.driver.engine
  }

  /** Resolves once the record is committed; rejects with RecordStoreError when it could not be written. */
  async savePrediction (record: PredictionRecord): Promise<void> {
    await this.predictions.submit(record)
  }

  async saveAuditEvent (event: AuditEvent): Promise<void> {
    await this.auditEvents.submit(event)
  }

  async saveFailedInstance (record: FailedInstanceRecord): Promise<void> {
    await this.failedInstances.submit(record)
  }

  /**
   * What was received for one study, in arrival order: the classified instances and the refused ones, the newest
   * MAX_STUDY_ROWS of each (of classified slices: a multi-frame object counts its frames). The newest, since a study
   * sent again many times has its current results in its last rows: the oldest rows kept every result as first
   * received, the newer never read. With `caller`, only that caller's (its own view). Without, the study's: its
   * owner's, the caller that first had one of its instances classified (with STUDY_OWNERS, the first listed caller to),
   * or, while it has none, the refusals of every caller that may own it. Any caller with the predict scope can send
   * instances under any StudyInstanceUID, a copy of one or a series of its own, and would otherwise rewrite the study
   * that every records:read-all reader and the FHIR push see. The owner is read from all the study's rows, not from
   * the newest: another caller's flood of the study's UID would fill those. The classified rows read are one caller's
   * (STUDY_INSTANCES_SQL); a study without an owner has none of a caller that may own it.
   */
  async readStudy (studyInstanceUid: string, caller?: Caller): Promise<StudyRows> {
    const owner = caller ?? (await this.driver.query<{ caller: string | null }>(
      `SELECT ${studyOwnerSql('$1', '$2::text[]')} AS caller`, [studyInstanceUid, this.studyOwners], 'records.study.owner'))[0]?.caller
    const found = owner !== undefined && owner !== null
    const instances = found ? await this.driver.query<StudyInstanceRow>(STUDY_INSTANCES_SQL, [studyInstanceUid, owner, MAX_STUDY_ROWS], 'records.study') : []
    // whose refusals are read: the owner's, else those of every caller that may own it (null: every caller's)
    const [whose, callers] = found ? ['caller', [owner]] as const : this.studyOwners !== null ? ['listed', [this.studyOwners]] as const : ['any', []] as const
    const failures = await this.driver.query<StudyFailureRow>(STUDY_FAILURES_SQL[whose], [studyInstanceUid, MAX_STUDY_ROWS, ...callers], `records.study.failed.${whose}`)
    return { instances: instances.reverse(), failures: failures.reverse() }
  }

  /** One recorded answer; with `caller`, only if that caller made it. */
  async getPrediction (id: string, caller?: Caller): Promise<StoredPrediction | undefined> {
    const rows = await this.driver.query<StoredRow>(
      `SELECT id, answer, caller, ${CREATED_AT_US} FROM predictions WHERE id = $1 AND ($2::text IS NULL OR caller = $2)`,
      [id, caller ?? null], 'records.get')
    return rows.length === 0 ? undefined : storedPrediction(rows[0])
  }

  /** Newest first (records/page.ts). */
  async listPredictions (query: PredictionQuery): Promise<PredictionPage> {
    const { sql, params } = pageSql('predictions', 'id, answer, caller', 'uuid', {
      ...query, equal: { prediction: query.prediction, study_instance_uid: query.studyInstanceUid }
    })
    return pageOf(await this.driver.query<StoredRow>(sql, params), query.limit, storedPrediction)
  }

  /**
   * Everything recorded about one prediction (the study view, the overlay and audits read this): with `caller`, only
   * if that caller made it.
   */
  async getPredictionRecord (id: string, caller?: Caller): Promise<PredictionRecord | undefined> {
    const rows = await this.driver.query<PredictionRow>(
      `SELECT *, ${CREATED_AT_US} FROM predictions WHERE id = $1 AND ($2::text IS NULL OR caller = $2)`,
      [id, caller ?? null], 'records.record')
    return rows.length === 0 ? undefined : fromPredictionRow(rows[0])
  }

  /** Audit events, newest first (records/page.ts). */
  async listAuditEvents (query: AuditQuery): Promise<AuditPage> {
    const { sql, params } = pageSql('audit_events', 'id, caller, method, route, status, code, request_id, file_index', 'bigint', {
      ...query, equal: { code: query.code }
    })
    return pageOf(await this.driver.query<AuditRow & { id: string }>(sql, params), query.limit, fromAuditRow)
  }

  /**
   * Deletes at most `limit` predictions, `limit` audit events and `limit` failed instances older than `before`, oldest
   * first; returns how many went. Rows another replica is deleting at the same moment are skipped, not waited for. A
   * study's callers' first predictions are kept before any of theirs go, and forgotten with the study's last, in the
   * same statement (study-owner.ts).
   */
  async deleteExpired (before: Date, limit: number): Promise<{ predictions: number, auditEvents: number, failedInstances: number }> {
    // Predictions: in the same statement, the first rows of the studies that keep some are kept, the others' forgotten.
    const owners = `, kept AS (${keepStudyOwnersSql('doomed')}), forgot AS (${forgetStudyOwnersSql('doomed')})`
    const sweep = async (table: string, keepOwners = false): Promise<number> => {
      const rows = await this.driver.query<{ n: number }>(
        `WITH doomed AS (SELECT id${keepOwners ? ', study_instance_uid, caller' : ''} FROM ${table} WHERE created_at < $1::timestamptz ` +
        `ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)${keepOwners ? owners : ''}, ` +
        `gone AS (DELETE FROM ${table} WHERE id IN (SELECT id FROM doomed) RETURNING 1) SELECT count(*)::integer AS n FROM gone`,
        [before.toISOString(), limit], `records.sweep.${table}`)
      return Number(rows[0]?.n ?? 0)
    }
    const predictions = await sweep('predictions', true)
    // What the statements above could not forget: a study's last rows deleted by two between them (study-owner.ts).
    await this.driver.query(FORGET_STUDY_OWNERS_SQL, [limit], 'records.sweep.study_owners')
    const swept = { predictions, auditEvents: await sweep('audit_events'), failedInstances: await sweep('failed_instances') }
    // A push row outlives its study's records only until the same cutoff (one row per study: not counted).
    await this.driver.query('DELETE FROM study_pushes WHERE study_instance_uid IN (SELECT study_instance_uid FROM study_pushes ' +
      'WHERE version < $1::timestamptz LIMIT $2 FOR UPDATE SKIP LOCKED)', [before.toISOString(), limit], 'records.sweep.study_pushes')
    return swept
  }

  /** Removes one prediction record (one whose answer was not given after all), and what was kept of its study with its last (study-owner.ts). */
  async deletePrediction (id: string): Promise<void> {
    await this.driver.query(DELETE_PREDICTION_SQL, [id], 'records.delete.prediction')
  }

  /** The embedded database's VACUUM and CHECKPOINT (records/maintenance.ts); a PostgreSQL server's autovacuum does it there. */
  async maintain (): Promise<void> {
    if (this.driver.engine !== 'pglite') return
    try {
      await this.driver.exec(VACUUM_STATEMENT)
    } finally {
      await this.driver.exec(CHECKPOINT_STATEMENT)
    }
  }

  /** A round trip to the database (readiness). */
  async ping (): Promise<void> {
    await this.driver.query('SELECT 1', [], 'records.ping')
  }

  /** Writes what is queued, then closes the connection(s). */
  async close (): Promise<void> {
    await Promise.all([this.predictions.drain(), this.auditEvents.drain(), this.failedInstances.drain()])
    await this.driver.close()
  }

  private async insert (kind: RecordKind, sql: string, rows: Array<Record<string, unknown>>): Promise<void> {
    const started = performance.now()
    await this.driver.query(sql, [JSON.stringify(rows)], `records.insert.${kind}`)
    this.hooks.written?.(kind, rows.length, performance.now() - started)
  }
}
