import { join } from 'node:path'
import { startPostgres } from '../test/helpers/postgres.js'
import { startService, type RunningServer } from './processes.js'
import { median, type ServerRun, type Target } from './report.js'

/** The target: recording may cost at most 5 % of /predict throughput at 8 connections. */
const MIN_RATIO = 0.95

export const NO_RECORDS = 'records off'
export const RECORDS_PGLITE = 'records PGlite (default)'
export const RECORDS_POSTGRES = 'records PostgreSQL'

export interface RecordsContenders {
  /** The service with records off, and on a PostgreSQL server (a throwaway cluster with the server's durable defaults). */
  off: RunningServer
  postgres: RunningServer
  stop: () => Promise<void>
}

/** The two services the records comparison adds next to the default one (which records on PGlite). */
export async function startRecordsContenders (env: NodeJS.ProcessEnv, work: string): Promise<RecordsContenders> {
  const server = await startPostgres({ durable: true })
  try {
    const databaseUrl = await server.createDatabase('bench')
    const [off, postgres] = await Promise.all([
      startService({ ...env, UPLOAD_DIR: join(work, 'off-uploads'), RECORDS_STORE: 'off' }, join(work, 'records-off.log'), NO_RECORDS),
      startService({ ...env, UPLOAD_DIR: join(work, 'postgres-uploads'), DATABASE_URL: databaseUrl }, join(work, 'records-postgres.log'), RECORDS_POSTGRES)
    ])
    return { off, postgres, stop: async () => { await Promise.all([off.stop(), postgres.stop()]); await server.destroy() } }
  } catch (error) {
    await server.destroy()
    throw error
  }
}

/** The three variants in a different order each round, so that neither is always measured first. */
export function recordsOrder<T> (variants: T[], round: number): T[] {
  return variants.map((_, i) => variants[(i + round) % variants.length])
}

/**
 * Throughput with records over throughput without, per round (the three measured back to back at the same connection
 * count), for each recording variant; the median over the rounds is compared with the target.
 */
export function recordsCostFor (rounds: number, imageSet: string, runs: Record<string, ServerRun[]>): Record<string, Target> {
  const rate = (variant: string, round: number): number =>
    runs[variant]?.find((r) => r.round === round && r.imageSet === imageSet)?.requestsPerSecond ?? NaN
  return Object.fromEntries(Object.keys(runs).filter((variant) => variant !== NO_RECORDS).map((variant) => {
    const perRound = Array.from({ length: rounds }, (_, round) => rate(variant, round) / rate(NO_RECORDS, round))
    const value = median(perRound)
    return [`${variant} / ${NO_RECORDS}`, {
      perRound: perRound.map((v) => Number(v.toFixed(3))),
      median: Number(value.toFixed(3)),
      target: `>= ${MIN_RATIO} (recording costs at most ${Math.round((1 - MIN_RATIO) * 100)} % of throughput)`,
      met: value >= MIN_RATIO
    }]
  }))
}
