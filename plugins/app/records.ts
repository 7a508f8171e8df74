import { setTimeout as sleep } from 'node:timers/promises'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { MAINTENANCE_EVERY_MS, MAINTENANCE_FIRST_MS } from '../../records/maintenance.js'
import { isRowFault, RecordStoreError, RecordsApiDisabledError, RecordsUnavailableError } from '../../records/errors.js'
import { LOCK_LOST } from '../../records/pglite-driver.js'
import type { AuditEvent, Caller, FailedInstanceRecord, PredictionRecord } from '../../records/record.js'
import { sweepPass, type Swept } from '../../records/retention.js'
import { Repeating } from '../../records/repeating.js'
import { RecordStore, type AuditPage, type AuditQuery, type PredictionPage, type PredictionQuery, type RecordKind, type StoredPrediction } from '../../records/store.js'
import type { StudyRows } from '../../records/study-rows.js'
import type { ServiceMetrics } from './metrics.js'
import { callerOf } from './record-origin.js'
import { storeOptionsOf, type RecordsConfig } from './records-config.js'

export type RecordsState = 'off' | 'opening' | 'ready' | 'failed'

/** Whether a prediction's record was committed; not, only with RECORDS_REQUIRED=false, and then why. */
export type PredictionRecording = { recorded: true } | { recorded: false, reason: string }

const RETRY_MS = { first: 1_000, max: 30_000 }
/**
 * How long readiness stays 503 after a prediction could not be recorded for the database's sake (not one row's
 * data). A successful write ends it sooner. It must end on its own: an instance taken out of a load balancer gets no
 * writes that could prove the database is back, and a probe write cannot stand in for them (a full disk fails only
 * the writes that need a new page; a one-row probe rarely does).
 */
const WRITE_FAILURE_HOLD_MS = 30_000

/**
 * The records store of this instance and the service's policy around it: opened in the background (readiness waits
 * for it; a PostgreSQL server that is not there yet is retried), predictions written before they are answered
 * (RECORDS_REQUIRED), refusals audited without ever delaying or failing the refusal, the retention sweep, and who may
 * read which records.
 */
export class RecordsService {
  state: RecordsState
  /** Why the store is not usable (opening, unreachable, failed), in words safe to show. */
  reason: string | undefined
  /** Why the opened store can be used no more until a restart (StoreHooks.lost); liveness fails with it. */
  lost: string | undefined
  /** Resolves once the store is open (or records are off); rejects only if the embedded database cannot be opened. */
  readonly opened: Promise<void>
  private store: RecordStore | undefined
  /** Aborted by close(): cuts the attempt to open the store under way or the wait before the next, and starts none. */
  private readonly closing = new AbortController()
  /** False after a failed write until the next successful one: only the changes are logged, not every failure. */
  private writing = true
  /**
   * The last prediction that could not be recorded for the database's sake (readiness reports it), cleared by one
   * recorded after it began. Writes are compared by when they began: one that began before the last success and
   * failed late (a timeout from an outage already over) does not count.
   */
  private predictionWriteFailure: { reason: string, began: number, at: number } | undefined
  private lastRecordedStart = 0
  /** The retention sweep and the embedded database's maintenance. */
  private readonly background = new Repeating((name, err) => this.log.warn({ err }, `records ${name} failed; it runs again later`))

  constructor (
    readonly config: RecordsConfig,
    private readonly metrics: ServiceMetrics,
    private readonly log: FastifyBaseLogger
  ) {
    this.state = config.store === 'off' ? 'off' : 'opening'
    this.reason = config.store === 'off' ? 'records are off (RECORDS_STORE=off)' : 'the records store is opening'
    this.opened = config.store === 'off' ? Promise.resolve() : this.open()
    this.opened.catch(() => {})
  }

  private async open (): Promise<void> {
    const closing = this.closing.signal
    for (let delay = RETRY_MS.first; !closing.aborted; delay = Math.min(delay * 2, RETRY_MS.max)) {
      try {
        const { store, applied } = await RecordStore.open(storeOptionsOf(this.config), {
          written: (kind, rows, ms) => {
            this.metrics.recordsWriteDuration.observe({ kind }, ms / 1000)
            this.metrics.recordsWriteRows.observe({ kind }, rows)
          },
          connectionError: (err) => this.log.warn({ err }, 'records store: an idle database connection failed'),
          // every later statement fails with this reason (readiness and /predict say it); only a restart reopens it
          lost: (reason) => {
            this.lost = reason
            this.log.error(reason === LOCK_LOST
              ? `records store: ${reason}: this instance no longer uses it (was it paused for longer than 30 s?); stop it, or restart it once the other has stopped`
              : `records store: ${reason}`)
          }
        }, closing)
        if (closing.aborted) { await store.close(); return }
        this.store = store
        this.state = 'ready'
        this.reason = undefined
        this.log.info({ engine: store.engine, migrationsApplied: applied }, 'records store ready')
        if (this.config.retentionMs !== 0) {
          this.background.start('retention sweep', 0, async () => {
            const { backlog } = await this.sweepExpired()
            return backlog ? 1_000 : Math.min(3_600_000, Math.max(1_000, this.config.retentionMs / 4))
          }, 60_000)
        }
        if (store.engine === 'pglite') this.background.start('maintenance', MAINTENANCE_FIRST_MS, async () => { await this.maintain(); return MAINTENANCE_EVERY_MS }, MAINTENANCE_EVERY_MS)
        return
      } catch (error) {
        const reason = error instanceof RecordStoreError ? error.reason : 'the records store cannot be opened'
        this.reason = reason
        // closed while waiting for a server, or for another instance's lock on the embedded database: no failure
        if (closing.aborted) return
        if (this.config.store === 'pglite') {
          this.state = 'failed'
          this.log.error({ err: error }, `records store: ${reason}`)
          throw error
        }
        this.log.error({ err: error, retryInMs: delay }, `records store: ${reason}; retrying`)
        // Cut short by close(), which must never wait out a backoff (up to 30 s, on a timer that holds nothing open).
        await sleep(delay, undefined, { signal: closing, ref: false }).catch(() => {})
      }
    }
  }

  /**
   * Records a prediction before it is answered. Throws RecordsUnavailableError unless RECORDS_REQUIRED=false; then a
   * record that could not be written resolves `recorded: false` with the reason, for answeredWithoutRecord.
   */
  async savePrediction (record: PredictionRecord): Promise<PredictionRecording> {
    const started = performance.now()
    try {
      if (this.store === undefined) throw new RecordStoreError(this.reason ?? 'the records store is not open')
      await this.store.savePrediction(record)
      this.written('prediction')
      this.lastRecordedStart = Math.max(this.lastRecordedStart, started)
      if ((this.predictionWriteFailure?.began ?? Infinity) <= started) this.predictionWriteFailure = undefined
      return { recorded: true }
    } catch (error) {
      const reason = this.failed('prediction', error)
      if (!isRowFault(error) && started > this.lastRecordedStart) this.predictionWriteFailure = { reason, began: started, at: performance.now() }
      if (this.config.required) throw new RecordsUnavailableError(reason)
      return { recorded: false, reason }
    }
  }

  /** RECORDS_REQUIRED=false: a prediction is answered although its record could not be written. */
  answeredWithoutRecord (id: string, reason: string): void {
    this.metrics.recordsLost.inc({ kind: 'prediction' })
    this.log.error({ predictionId: id, reason }, 'prediction answered without a record (RECORDS_REQUIRED=false)')
  }

  /**
   * Removes the committed record of a prediction that was not answered after all (its upload could not be kept, or
   * the request had been answered 408). Never throws: the request fails with its own error; a record that could not
   * be removed is logged with its id and counted, since it tells of an answer nobody received.
   */
  async withdrawPrediction (id: string): Promise<void> {
    try {
      if (this.store === undefined) throw new RecordStoreError(this.reason ?? 'the records store is not open')
      await this.store.deletePrediction(id)
      this.metrics.recordsWithdrawn.inc({ result: 'ok' })
      this.log.info({ predictionId: id }, 'records store: the record of a prediction that was not answered was withdrawn')
    } catch (error) {
      this.metrics.recordsWithdrawn.inc({ result: 'failed' })
      this.log.error({ predictionId: id, err: error }, 'records store: the record of a prediction that was not answered could not be withdrawn: it stays')
    }
  }

  /** Records a refusal in the background: the refusal is sent whatever happens here. */
  audit (event: AuditEvent): void {
    this.inBackground('audit', (store) => store.saveAuditEvent(event))
  }

  /** Records a refused DICOM instance (its UIDs and error code) in the background, so its study counts it. */
  failedInstance (record: FailedInstanceRecord): void {
    this.inBackground('failed-instance', (store) => store.saveFailedInstance(record))
  }

  private inBackground (kind: Exclude<RecordKind, 'prediction'>, write: (store: RecordStore) => Promise<void>): void {
    if (this.state === 'off') return
    const store = this.store
    const written = store === undefined ? Promise.reject(new RecordStoreError(this.reason ?? 'the records store is not open')) : write(store)
    written.then(() => this.written(kind), (error: unknown) => {
      this.failed(kind, error)
      this.metrics.recordsLost.inc({ kind })
    })
  }

  /** The FHIR push queue (plugins/app/fhir-push.ts); throws RecordsUnavailableError while the store is not open. */
  async withPushQueue<T> (work: (queue: RecordStore['pushes']) => Promise<T>): Promise<T> {
    return await this.reading(async (store) => await work(store.pushes))
  }

  /** What was received for one study (GET /studies/{uid}); with `caller`, only that caller's instances. */
  async readStudy (studyInstanceUid: string, caller?: Caller): Promise<StudyRows> {
    return await this.reading(async (store) => await store.readStudy(studyInstanceUid, caller))
  }

  private written (kind: RecordKind): void {
    this.metrics.recordsWritten.inc({ kind })
    if (!this.writing) this.log.info('records store: writes succeed again')
    this.writing = true
  }

  private failed (kind: RecordKind, error: unknown): string {
    this.metrics.recordsWriteFailures.inc({ kind })
    const reason = error instanceof RecordStoreError ? error.reason : 'unexpected error'
    if (this.writing) this.log.error({ err: error, kind }, `records store: write failed: ${reason}`)
    this.writing = false
    return reason
  }

  /**
   * Whose records `request` may read: undefined for everyone's (a `records:read-all` scope, or no authentication),
   * else the caller's own. Throws when the records API is off on this instance.
   */
  readerScope (request: FastifyRequest, authOn: boolean): Caller | undefined {
    if (this.state === 'off') throw new RecordsApiDisabledError('nothing is recorded (RECORDS_STORE=off)')
    if (!this.config.api) {
      throw new RecordsApiDisabledError('without authentication it is served only on a loopback address without a reverse proxy (TRUST_PROXY); switch authentication on, or set RECORDS_API=on')
    }
    if (!authOn || request.principal?.scopes.includes(this.config.readAllScope) === true) return undefined
    return callerOf(request)
  }

  async getPrediction (id: string, caller?: Caller): Promise<StoredPrediction | undefined> {
    return await this.reading(async (store) => await store.getPrediction(id, caller))
  }

  async listPredictions (query: PredictionQuery): Promise<PredictionPage> {
    return await this.reading(async (store) => await store.listPredictions(query))
  }

  /** Everything recorded about one prediction: what an overlay is drawn from (upload file, format, CAM), what a study view orders by. */
  async getPredictionRecord (id: string, caller?: Caller): Promise<PredictionRecord | undefined> {
    return await this.reading(async (store) => await store.getPredictionRecord(id, caller))
  }

  async listAuditEvents (query: AuditQuery): Promise<AuditPage> {
    return await this.reading(async (store) => await store.listAuditEvents(query))
  }

  private async reading<T> (read: (store: RecordStore) => Promise<T>): Promise<T> {
    try {
      if (this.store === undefined) throw new RecordStoreError(this.reason ?? 'the records store is not open')
      return await read(this.store)
    } catch (error) {
      if (error instanceof RecordStoreError) throw new RecordsUnavailableError(error.reason)
      throw error
    }
  }

  /** Readiness: throws RecordsUnavailableError (naming why) when predictions cannot be recorded and must be. */
  async checkReady (): Promise<void> {
    if (this.state === 'off' || !this.config.required) return
    const failure = this.predictionWriteFailure
    if (failure !== undefined && performance.now() - failure.at < WRITE_FAILURE_HOLD_MS) {
      throw new RecordsUnavailableError(`the last prediction could not be recorded: ${failure.reason}`)
    }
    await this.reading(async (store) => await store.ping())
  }

  /** One bounded retention pass (records/retention.ts); `backlog`: the next pass comes after a second, not a quarter of the retention. */
  async sweepExpired (): Promise<Swept & { backlog: boolean }> {
    const cutoff = new Date(Date.now() - this.config.retentionMs)
    const swept = await sweepPass(async (limit) => await this.reading(async (store) => await store.deleteExpired(cutoff, limit)), (deleted) => {
      this.metrics.recordsSwept.inc({ kind: 'prediction' }, deleted.predictions)
      this.metrics.recordsSwept.inc({ kind: 'audit' }, deleted.auditEvents)
      this.metrics.recordsSwept.inc({ kind: 'failed-instance' }, deleted.failedInstances)
    })
    if (swept.predictions + swept.auditEvents + swept.failedInstances > 0) this.log.info(swept, 'records retention sweep')
    return swept
  }

  /**
   * The embedded database's VACUUM (ANALYZE) and CHECKPOINT (records/maintenance.ts; a server does its own), logged with
   * its duration: the statements sent meanwhile, a prediction's record among them, waited up to that long.
   */
  async maintain (): Promise<void> {
    const started = performance.now()
    // logged at the start too: statements wait behind it, and the first run on a large old database can be long
    this.log.info('records store maintenance: vacuuming, analyzing, checkpointing')
    await this.reading(async (store) => await store.maintain())
    this.log.info({ durationMs: Math.round(performance.now() - started) }, 'records store maintenance: vacuumed, analyzed, checkpointed')
  }

  /**
   * Stops the background work and closes the store: nothing of it is left afterwards (no timer, pool or connection).
   * An attempt to open the store that is under way is cut (its connections are destroyed, not waited for up to
   * DATABASE_TIMEOUT_MS), the wait before the next attempt is cut short, and none starts.
   */
  async close (): Promise<void> {
    this.closing.abort()
    const stopped = this.background.stop()
    await this.opened.catch(() => {})
    await stopped
    await this.store?.close()
    this.store = undefined
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    records: RecordsService
  }
}

export default fp(async (app) => {
  const records = new RecordsService(app.config.records, app.metrics, app.log)
  app.decorate('records', records)
  // A store that is lost comes back only with a restart: liveness asks an orchestrator for one.
  app.liveness.watch(() => records.lost === undefined ? undefined : `the records store: ${records.lost}`)
  // after the requests in flight (and their records) are done: Fastify runs onClose once the server has stopped
  app.addHook('onClose', async () => await records.close())
}, { name: 'records', dependencies: ['config', 'metrics', 'liveness'] })
