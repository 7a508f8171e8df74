import fp from 'fastify-plugin'
import { toStudyDiagnosticReport } from '../../inference/study-fhir.js'
import type { DiagnosticReport } from 'fhir/r4.js'
import type { ClaimedPush } from '../../records/push-queue.js'
import { sha256Hex } from '../../records/record.js'

/** Retry delay after the n-th failed attempt: 1, 2, 4, ... seconds, at most 5 minutes (10 attempts span about 10 minutes). */
export function backoffSeconds (attempt: number): number {
  return Math.min(300, 2 ** Math.max(0, attempt - 1))
}

/**
 * What a report says and where it goes, as a SHA-256: the FHIR server's URL and the report without its `issued` time,
 * which is the time of each POST. Two versions of a study with the same hash are the same report (the same instances
 * sent again) to the same server; after FHIR_SERVER_URL changes, a study sent again goes to the new server.
 */
export function reportSha256 (serverUrl: string, report: DiagnosticReport): string {
  return sha256Hex(Buffer.from(`${serverUrl}\n${JSON.stringify({ ...report, issued: undefined })}`))
}

/** A claim lasts longer than one POST may take, so no other replica pushes the same study meanwhile. */
const POST_TIMEOUT_MS = 30_000
const LEASE_SECONDS = 60
/**
 * Studies pushed in one pass, each claimed just before its POST: studies claimed together behind a POST that hangs
 * for its 30 s would pass their lease before their own POST began, and another replica would push them as well.
 */
const PUSHES_PER_PASS = 8

/**
 * FHIR push (FHIR_SERVER_URL): once every series of a study is final (SERIES_IDLE_SECONDS without a new instance), its
 * DiagnosticReport is POSTed to `<FHIR_SERVER_URL>/DiagnosticReport`, with a bearer token when FHIR_SERVER_TOKEN is set.
 * Network errors, 408, 429 and 5xx are retried with exponential backoff up to FHIR_PUSH_MAX_ATTEMPTS; other 4xx
 * answers are not retried (the same report would be refused again). The queue lives in the records database, so
 * replicas share it and a restart resumes it; a study that grows after its push is pushed again, POSTed as a new
 * DiagnosticReport beside the first: a PUT replaced what the receiving system had added to it (reverted, 3152e41).
 * A new version whose report is the one accepted last (a PACS sending the same study again) is not sent again.
 */
export default fp(async (app) => {
  const { url, maxAttempts, token } = app.config.fhirPush
  if (url === undefined) return
  const { idleSeconds } = app.config.series
  const pollMs = Math.min(5_000, Math.max(500, idleSeconds * 500))
  let timer: NodeJS.Timeout | undefined
  let pass: Promise<void> | undefined
  /** Aborted when the service stops: cuts a POST under way instead of waiting up to POST_TIMEOUT_MS for it. */
  const stopping = new AbortController()

  const post = async (push: ClaimedPush): Promise<void> => {
    const study = await app.studyResult(push.studyInstanceUid)
    if (study === undefined) return
    if (!study.final) {
      // Instances came after this version was queued (a new series while its retry waited out the backoff): its
      // report would go out 'partial', be recorded as this version's push, and the final one follow as a second
      // report. Not an attempt: the study is queued again, as a new version, once it is final.
      const finalAt = Math.max(...study.series.map((series) => Date.parse(series.finalAt)))
      await app.records.withPushQueue(async (queue) => await queue.released(push, Math.max(1, Math.ceil((finalAt - Date.now()) / 1000))))
      app.log.info({ study: push.studyInstanceUid }, 'FHIR push: new instances arrived, the study waits to be final again')
      return
    }
    const report = toStudyDiagnosticReport(study)
    const sha256 = reportSha256(url, report)
    if (sha256 === push.acceptedReport) {
      await app.records.withPushQueue(async (queue) => await queue.unchanged(push))
      app.metrics.fhirPushes.inc({ result: 'unchanged' })
      app.log.info({ study: push.studyInstanceUid }, 'FHIR push: the study was received again and its report is the one accepted before: not sent again')
      return
    }
    let failure: { error: string, retry: boolean }
    try {
      const response = await fetch(`${url}/DiagnosticReport`, {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
        body: JSON.stringify(report),
        // Never followed: a 301/302/303 turns the POST into a GET of the same URL, whose 200 (a search Bundle) would
        // count as an accepted report, and a 307/308 sends the clinical report to an address nobody configured.
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(POST_TIMEOUT_MS), stopping.signal])
      })
      await response.body?.cancel()
      if (response.ok) {
        await app.records.withPushQueue(async (queue) => await queue.pushed(push, sha256, response.headers.get('location') ?? undefined))
        app.metrics.fhirPushes.inc({ result: 'accepted' })
        app.log.info({ study: push.studyInstanceUid, attempt: push.attempts, status: response.status }, 'FHIR push: DiagnosticReport accepted')
        return
      }
      failure = response.status >= 300 && response.status < 400
        ? { error: `HTTP ${response.status}: the FHIR server redirects; set FHIR_SERVER_URL to the address it redirects to`, retry: false }
        : { error: `HTTP ${response.status}`, retry: response.status === 408 || response.status === 429 || response.status >= 500 }
    } catch (error) {
      if (stopping.signal.aborted) {
        // Our shutdown cut it, not the FHIR server: not an attempt (no count toward FHIR_PUSH_MAX_ATTEMPTS, no backoff).
        await app.records.withPushQueue(async (queue) => await queue.released(push))
        app.log.info({ study: push.studyInstanceUid }, 'FHIR push cut by the shutdown: left for the next start')
        return
      }
      failure = { error: (error as Error).name === 'TimeoutError' ? 'timed out' : 'the FHIR server could not be reached', retry: true }
    }
    const giveUp = !failure.retry || push.attempts >= maxAttempts
    app.log.warn({ study: push.studyInstanceUid, attempt: push.attempts, error: failure.error, giveUp }, 'FHIR push failed')
    await app.records.withPushQueue(async (queue) => await queue.failed(push, failure.error, backoffSeconds(push.attempts), giveUp))
    app.metrics.fhirPushes.inc({ result: giveUp ? 'gave_up' : 'failed' })
  }

  const runPass = async (): Promise<void> => {
    // A report needs the model's threshold (app.studyResult): no study is claimed before the model is loaded.
    if (app.model.state === 'loading') return
    try {
      await app.records.withPushQueue(async (queue) => await queue.enqueueFinal(idleSeconds, new Date()))
      for (let n = 0; n < PUSHES_PER_PASS && !stopping.signal.aborted; n++) {
        const [push] = await app.records.withPushQueue(async (queue) => await queue.claimDue(1, LEASE_SECONDS))
        if (push === undefined) break
        await post(push)
      }
    } catch (err) {
      // The store is not open yet, or went away: the next pass tries again; claims expire with their lease.
      app.log.debug({ err }, 'FHIR push pass skipped')
    }
  }
  const schedule = (): void => {
    if (stopping.signal.aborted) return
    timer = setTimeout(() => { pass = runPass().finally(schedule) }, pollMs).unref()
  }
  app.addHook('onReady', async () => { schedule() })
  app.addHook('preClose', async () => {
    stopping.abort()
    clearTimeout(timer)
    await pass
  })
}, { name: 'fhir-push', dependencies: ['config', 'metrics', 'model', 'records', 'studies'] })
