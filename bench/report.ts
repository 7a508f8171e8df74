import type { LimitResult } from './limit.js'
import type { LoadResult } from './load.js'

/** One load run against one server in one round. */
export interface ServerRun extends LoadResult {
  round: number
  imageSet: string
  /** Server process CPU (all threads) per answered request. */
  cpuMsPerRequest: number
  meanBatchSize?: number
  loadAverage1m: number
}

export interface LimitRun extends LimitResult {
  round: number
  imageSet: string
  loadAverage1m: number
}

export interface Target {
  /** The ratio in each round, from runs measured minutes apart at most. */
  perRound: number[]
  /** Median over the rounds: what is compared with the target. */
  median: number
  target: string
  met: boolean
}

/** A results file's time stamp, to the minute and without colons: 2026-12-04T2137Z. */
export function resultsStamp (date: Date | string): string {
  return new Date(date).toISOString().replace(/:\d\d\.\d+Z$/, 'Z').replace(/:/g, '')
}

export function median (values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** The median of every figure of the runs at one (image set, connections) cell, over the rounds. */
export function medianRun (runs: ServerRun[]): { requestsPerSecond: number, p50: number, p95: number, p99: number, errors: number, cpuMsPerRequest: number, meanBatchSize: number, loadGeneratorCores: number } {
  const of = (pick: (r: ServerRun) => number | undefined): number => median(runs.map((r) => pick(r) ?? NaN))
  return {
    requestsPerSecond: of((r) => r.requestsPerSecond),
    p50: of((r) => r.latencyMs.p50),
    p95: of((r) => r.latencyMs.p95),
    p99: of((r) => r.latencyMs.p99),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    cpuMsPerRequest: of((r) => r.cpuMsPerRequest),
    meanBatchSize: of((r) => r.meanBatchSize),
    loadGeneratorCores: of((r) => r.loadGeneratorCores)
  }
}

/** Per-round ratios and their median, to three decimals (the median taken before rounding). */
function summary (perRound: number[]): { perRound: number[], median: number } {
  return { perRound: perRound.map((v) => Number(v.toFixed(3))), median: Number(median(perRound).toFixed(3)) }
}

function target (perRound: number[], goal: string, met: (value: number) => boolean): Target {
  return { ...summary(perRound), target: goal, met: met(median(perRound)) }
}

const runAt = (runs: ServerRun[], imageSet: string, round: number, connections: number): ServerRun | undefined =>
  runs.find((r) => r.round === round && r.imageSet === imageSet && r.connections === connections)
const rate = (run: ServerRun | undefined): number => run?.requestsPerSecond ?? NaN
const limitRate = (limit: LimitRun[], imageSet: string, round: number): number =>
  limit.find((r) => r.round === round && r.imageSet === imageSet)?.imagesPerSecond ?? NaN
const eachRound = (rounds: number, value: (round: number) => number): number[] => Array.from({ length: rounds }, (_, round) => value(round))
/** The issue's first target: the service at least this many times the baseline's throughput. */
const BASELINE_MULTIPLE = 3

/**
 * The issue's targets at 8 connections, each a ratio of two figures measured in the same round (the service and
 * the baseline, the service and the limit), so that a slower or faster stretch of this VM lands on both sides.
 */
export function targetsFor (rounds: number, imageSet: string, service: ServerRun[], baseline: ServerRun[], limit: LimitRun[], connections = 8): Record<string, Target> {
  const at = (runs: ServerRun[], round: number): ServerRun | undefined => runAt(runs, imageSet, round, connections)
  const errors = service.filter((r) => r.imageSet === imageSet).reduce((n, r) => n + r.errors, 0)
  return {
    serviceVsBaseline: target(eachRound(rounds, (r) => rate(at(service, r)) / rate(at(baseline, r))), `>= ${BASELINE_MULTIPLE}`, (v) => v >= BASELINE_MULTIPLE),
    serviceVsLimit: target(eachRound(rounds, (r) => rate(at(service, r)) / limitRate(limit, imageSet, r)), '>= 0.8', (v) => v >= 0.8),
    p99OverP50: target(eachRound(rounds, (r) => {
      const run = at(service, r)
      return run === undefined ? NaN : run.latencyMs.p99 / run.latencyMs.p50
    }), '<= 2', (v) => v <= 2),
    serviceErrors: { perRound: [], median: errors, target: '0 (all rounds, all connection counts)', met: errors === 0 }
  }
}

/** The in-process limit over the baseline at 8 connections, per round: the most `serviceVsBaseline` could be. */
export interface Ceiling {
  perRound: number[]
  median: number
  /** False when even the limit, which has no HTTP at all, stays below `BASELINE_MULTIPLE` times the baseline: no
   * service built on this decode + inference path can then meet the first target, whatever its HTTP side does. */
  allowsServiceTarget: boolean
}

export function ceilingFor (rounds: number, imageSet: string, baseline: ServerRun[], limit: LimitRun[], connections = 8): Ceiling {
  const ratios = eachRound(rounds, (r) => limitRate(limit, imageSet, r) / rate(runAt(baseline, imageSet, r, connections)))
  return { ...summary(ratios), allowsServiceTarget: median(ratios) >= BASELINE_MULTIPLE }
}

const fmt = (v: number | undefined, digits = 1): string => v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits)

/** The Markdown table of medians over the rounds, one row per image set x contender x connections. */
export function medianTable (imageSets: string[], connectionLevels: number[], limit: LimitRun[], contenders: Array<[string, ServerRun[]]>): string {
  const rows = [['images', 'contender', 'conns', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'CPU ms/image', 'mean batch', 'load generator cores']]
  for (const set of imageSets) {
    const runs = limit.filter((r) => r.imageSet === set)
    if (runs.length > 0) rows.push([set, `in-process limit (batch ${runs[0]?.batchSize ?? '-'})`, '-', fmt(median(runs.map((r) => r.imagesPerSecond))), '-', '-', '-', '0',
      fmt(median(runs.map((r) => r.cpuMsPerImage)), 2), String(runs[0]?.batchSize ?? '-'), '0'])
    for (const [name, all] of contenders) {
      for (const connections of connectionLevels) {
        const m = medianRun(all.filter((r) => r.imageSet === set && r.connections === connections))
        rows.push([set, name, String(connections), fmt(m.requestsPerSecond), fmt(m.p50, 0), fmt(m.p95, 0), fmt(m.p99, 0), String(m.errors),
          fmt(m.cpuMsPerRequest, 2), fmt(m.meanBatchSize, 2), fmt(m.loadGeneratorCores, 2)])
      }
    }
  }
  return [
    `| ${rows[0].join(' | ')} |`,
    `|${rows[0].map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
    ...rows.slice(1).map((row) => `| ${row.join(' | ')} |`)
  ].join('\n')
}

export function ceilingLines (ceilings: Record<string, Ceiling>): string[] {
  return Object.entries(ceilings).map(([set, c]) =>
    `${set}: limitVsBaseline = ${fmt(c.median, 2)} (rounds: ${c.perRound.map((x) => fmt(x, 2)).join(', ')}): ` +
    (c.allowsServiceTarget
      ? `the ${BASELINE_MULTIPLE}x target is within reach of the limit`
      : `below ${BASELINE_MULTIPLE}, so the service (at most the limit) cannot meet serviceVsBaseline >= ${BASELINE_MULTIPLE}`))
}

export function targetLines (targets: Record<string, Record<string, Target>>): string[] {
  return Object.entries(targets).flatMap(([set, t]) => Object.entries(t).map(([name, v]) =>
    `${set}: ${name} = ${fmt(v.median, 2)}${v.perRound.length > 0 ? ` (rounds: ${v.perRound.map((x) => fmt(x, 2)).join(', ')})` : ''} ` +
    `target ${v.target}: ${v.met ? 'MET' : 'NOT MET'}`))
}
