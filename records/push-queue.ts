import { utcMicros } from './page.js'
import type { SqlDriver } from './sql-driver.js'
import { studyOwnerSql } from './study-owner.js'

/** A study whose DiagnosticReport this replica has claimed to push. */
export interface ClaimedPush {
  studyInstanceUid: string
  /** Newest instance time of the study when its push was decided (ISO, microseconds). */
  version: string
  /** This attempt's number, from 1. */
  attempts: number
  /** The SHA-256 of the last report the FHIR server accepted for the study (reportSha256), if any. */
  acceptedReport?: string
}

/** A replica's first sweep looks at studies with an instance this recently; older ones were pushed (or given up on) long ago. */
const LOOKBACK_SECONDS = 7 * 24 * 3600
/**
 * A later sweep looks back to where the one before it stopped, plus the rows that became visible only after that
 * sweep although their created_at is older: those committed up to latestCommitMs after it (store.ts), and this for
 * another replica's clock running a little behind this one's.
 */
const CLOCK_ALLOWANCE_SECONDS = 300

/**
 * The FHIR push queue in the records database (table study_pushes, migration 0002), shared by every replica: a
 * study becomes due when its newest instance is SERIES_IDLE_SECONDS old, is claimed by one replica at a time
 * (FOR UPDATE SKIP LOCKED, then a lease), and is due again, as a new version, when instances arrive after its push.
 * `location` and `report_sha256` are those of the last report the FHIR server accepted for the study, kept across
 * versions: a version whose report is that one again (the same instances sent again) is not sent (`unchanged`).
 */
export class PushQueue {
  /** The `now` of this replica's last sweep that completed. */
  private lastSweep: Date | undefined

  /** Seconds a later sweep reads before the one before it, besides idleSeconds. */
  private readonly overlapSeconds: number

  /**
   * `studyOwners`: the callers that may own a study as a text[] parameter (study-owner.ts), null for any caller.
   * `latestCommitMs`: the longest from a row's created_at to its commit (store.ts).
   */
  constructor (private readonly driver: SqlDriver, private readonly studyOwners: string | null, latestCommitMs: number) {
    this.overlapSeconds = latestCommitMs / 1000 + CLOCK_ALLOWANCE_SECONDS
  }

  /**
   * Queues every study final for `idleSeconds` at `now` whose newest version is not queued yet; returns how many.
   * A study's instances are its owner's (study-owner.ts), as in the report that is pushed: another caller sending under
   * its UID neither holds the push back nor makes it go out again with the same report. While it has no owner, the
   * refusals of the callers that may own it count (every caller's without STUDY_OWNERS): a study of which nothing but
   * unlisted callers' rows is left (their instances, or a listed owner's gone with retention) is never queued, nor one
   * whose owner's rows retention has taken while another caller's are left (its owner is kept: study-owner.ts).
   * `now` is the service's clock, the clock that wrote created_at: measured against the database's now(), a service
   * host 10 minutes behind the database server pushed every study 10 minutes before it was final, one ahead pushed it
   * late. The leases and retry times below stay on the database's clock: they are written and compared by it alone,
   * one clock shared by every replica.
   */
  async enqueueFinal (idleSeconds: number, now: Date): Promise<number> {
    // A study final now and not at the last sweep has its newest instance after that sweep's time less idleSeconds:
    // only those rows are read, not 7 days of them (90,000 DICOM rows: 540 ms of PGlite's one connection every pass).
    const lookback = this.lastSweep === undefined
      ? LOOKBACK_SECONDS
      : Math.min(LOOKBACK_SECONDS, Math.max(0, now.getTime() - this.lastSweep.getTime()) / 1000 + idleSeconds + this.overlapSeconds)
    const rows = await this.driver.query<{ n: number }>(
      'WITH recent AS (' +
      '  SELECT study_instance_uid, caller, created_at FROM predictions WHERE study_instance_uid IS NOT NULL AND created_at > $3::timestamptz - make_interval(secs => $1)' +
      '  UNION ALL SELECT study_instance_uid, caller, created_at FROM failed_instances WHERE created_at > $3::timestamptz - make_interval(secs => $1)' +
      `), owners AS (SELECT study_instance_uid, ${studyOwnerSql('studies.study_instance_uid', '$4::text[]')} AS owner FROM (SELECT DISTINCT study_instance_uid FROM recent) AS studies` +
      '), received AS (' +
      '  SELECT study_instance_uid, created_at FROM recent JOIN owners USING (study_instance_uid) ' +
      '  WHERE recent.caller = owners.owner OR (owners.owner IS NULL AND ($4::text[] IS NULL OR recent.caller = ANY($4::text[])))' +
      '), final AS (' +
      '  SELECT study_instance_uid, max(created_at) AS version FROM received GROUP BY study_instance_uid HAVING max(created_at) <= $3::timestamptz - make_interval(secs => $2)' +
      '), queued AS (' +
      '  INSERT INTO study_pushes (study_instance_uid, version, next_attempt_at) SELECT study_instance_uid, version, now() FROM final ' +
      '  ON CONFLICT (study_instance_uid) DO UPDATE SET version = EXCLUDED.version, attempts = 0, pushed_at = NULL, gave_up = false, ' +
      '    last_error = NULL, next_attempt_at = EXCLUDED.next_attempt_at WHERE study_pushes.version < EXCLUDED.version RETURNING 1' +
      ') SELECT count(*)::integer AS n FROM queued', [lookback, idleSeconds, now.toISOString(), this.studyOwners], 'pushes.enqueue')
    this.lastSweep = now
    return Number(rows[0]?.n ?? 0)
  }

  /** Claims up to `limit` due pushes for `leaseSeconds` (another replica takes them over only after that). */
  async claimDue (limit: number, leaseSeconds: number): Promise<ClaimedPush[]> {
    const rows = await this.driver.query<{ study_instance_uid: string, version: string, attempts: number, report_sha256: string | null }>(
      'UPDATE study_pushes SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2) WHERE study_instance_uid IN (' +
      '  SELECT study_instance_uid FROM study_pushes WHERE pushed_at IS NULL AND NOT gave_up AND next_attempt_at <= now() ' +
      '  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED' +
      `) RETURNING study_instance_uid, ${utcMicros('version')}, attempts, report_sha256`,
      [limit, leaseSeconds], 'pushes.claim')
    return rows.map((row) => ({
      studyInstanceUid: row.study_instance_uid,
      version: row.version,
      attempts: Number(row.attempts),
      ...(row.report_sha256 === null ? {} : { acceptedReport: row.report_sha256 })
    }))
  }

  /** The FHIR server accepted this version's report, of reportSha256 `report` (a newer version queued meanwhile is left alone). */
  async pushed (push: ClaimedPush, report: string, location: string | undefined): Promise<void> {
    await this.driver.query('UPDATE study_pushes SET pushed_at = now(), report_sha256 = $3, location = $4, last_error = NULL ' +
      'WHERE study_instance_uid = $1 AND version = $2::timestamptz', [push.studyInstanceUid, push.version, report, location ?? null], 'pushes.pushed')
  }

  /**
   * This version's report is the one the FHIR server accepted last (acceptedReport): the version counts as pushed,
   * nothing is sent, and the Location of that report stays.
   */
  async unchanged (push: ClaimedPush): Promise<void> {
    await this.driver.query('UPDATE study_pushes SET pushed_at = now(), last_error = NULL WHERE study_instance_uid = $1 AND version = $2::timestamptz',
      [push.studyInstanceUid, push.version], 'pushes.unchanged')
  }

  /** This attempt failed: retried after `retryInSeconds`, or never again when `giveUp`. */
  async failed (push: ClaimedPush, error: string, retryInSeconds: number, giveUp: boolean): Promise<void> {
    await this.driver.query('UPDATE study_pushes SET last_error = $3, gave_up = $4, next_attempt_at = now() + make_interval(secs => $5) ' +
      'WHERE study_instance_uid = $1 AND version = $2::timestamptz', [push.studyInstanceUid, push.version, error.slice(0, 500), giveUp, retryInSeconds], 'pushes.failed')
  }

  /**
   * This attempt was not made for a reason other than the FHIR server (the service's own shutdown cut it, or the study
   * is no longer final), so the claim is undone as if the attempt had not happened (its count and the backoff), and
   * the study is due again after `dueInSeconds` (at once: for the next process). Not when another replica has
   * claimed the study since (the lease passed): that claim counts its own attempt.
   */
  async released (push: ClaimedPush, dueInSeconds = 0): Promise<void> {
    await this.driver.query('UPDATE study_pushes SET attempts = attempts - 1, next_attempt_at = now() + make_interval(secs => $4) ' +
      'WHERE study_instance_uid = $1 AND version = $2::timestamptz AND attempts = $3 AND pushed_at IS NULL',
    [push.studyInstanceUid, push.version, push.attempts, dueInSeconds], 'pushes.released')
  }

  /** A study's push state (tests, operations). */
  async state (studyInstanceUid: string): Promise<{ version: string, attempts: number, pushed: boolean, gaveUp: boolean, lastError?: string, location?: string } | undefined> {
    const rows = await this.driver.query<{ version: string, attempts: number, pushed_at: string | null, gave_up: boolean, last_error: string | null, location: string | null }>(
      `SELECT ${utcMicros('version')}, attempts, pushed_at::text, gave_up, last_error, location ` +
      'FROM study_pushes WHERE study_instance_uid = $1', [studyInstanceUid], 'pushes.state')
    const row = rows[0]
    if (row === undefined) return undefined
    return {
      version: row.version,
      attempts: Number(row.attempts),
      pushed: row.pushed_at !== null,
      gaveUp: row.gave_up,
      ...(row.last_error === null ? {} : { lastError: row.last_error }),
      ...(row.location === null ? {} : { location: row.location })
    }
  }
}
