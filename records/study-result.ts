import { concludeSeries, concludeStudy, instanceSlices, orderSlices } from '../inference/series-conclusion.js'
import { DISCLAIMER } from '../inference/recommend.js'
import { MAX_STUDY_SERIES, type SeriesResult, type StudyResult } from '../schemas/study.js'
import type { StudyFailureRow, StudyInstanceRow, StudyRows } from './study-rows.js'

export interface StudyResultOptions {
  /** A series is final this long after its newest instance. */
  idleSeconds: number
  /** k of the series conclusion rule. */
  minAdjacentSlices: number
  /** The serving model's decision threshold: the rule stated for a series none of whose instances was classified. */
  threshold: number
  now: Date
}

const iso = (microseconds: string): string => `${microseconds.slice(0, 23)}Z`

interface SeriesRows {
  /** Latest classification per SOP instance (an instance sent again replaces its earlier result). */
  instances: Map<string, StudyInstanceRow>
  /** Latest refusal per SOP instance that has no classification. */
  failures: Map<string, StudyFailureRow>
  lastReceivedAt: string
}

/** The study's series in arrival order, the first MAX_STUDY_SERIES of them, and how many others its rows name. */
function groupBySeries ({ instances, failures }: StudyRows): { series: Map<string, SeriesRows>, leftOut: number } {
  const series = new Map<string, SeriesRows>()
  const leftOut = new Set<string>()
  const entry = (uid: string | null, at: string): SeriesRows | undefined => {
    const key = uid ?? ''
    const found = series.get(key)
    if (found === undefined && series.size >= MAX_STUDY_SERIES) {
      leftOut.add(key)
      return undefined
    }
    const group = found ?? { instances: new Map(), failures: new Map(), lastReceivedAt: at }
    if (at > group.lastReceivedAt) group.lastReceivedAt = at
    series.set(key, group)
    return group
  }
  // Arrival order, so that the first instance of each series fixes the series order and later rows replace earlier ones.
  const rows = [...instances.map((row) => ({ row, failed: false })), ...failures.map((row) => ({ row, failed: true }))]
    .sort((a, b) => a.row.created_at.localeCompare(b.row.created_at))
  rows.forEach(({ row, failed }, index) => {
    const sop = row.sop_instance_uid ?? `#${index}`
    const group = entry(row.series_instance_uid, row.created_at)
    if (group === undefined) return
    if (failed) group.failures.set(sop, row as StudyFailureRow)
    else group.instances.set(sop, row as StudyInstanceRow)
  })
  for (const group of series.values()) for (const sop of group.instances.keys()) group.failures.delete(sop)
  return { series, leftOut: leftOut.size }
}

function seriesResult (seriesInstanceUid: string, rows: SeriesRows, options: StudyResultOptions): SeriesResult {
  const instances = [...rows.instances.values()]
  const newest = instances.reduce<StudyInstanceRow | undefined>((latest, row) => latest === undefined || row.created_at > latest.created_at ? row : latest, undefined)
  // A multi-frame object's frames are slices of its series, counted and concluded as POST /predict/batch does.
  const slices = orderSlices(instances.flatMap((row) => instanceSlices({
    ...(row.instance_number === null ? {} : { instanceNumber: row.instance_number }),
    ...(row.slice_position === null ? {} : { slicePosition: row.slice_position }),
    probability: row.probability_stone,
    prediction: row.prediction
  }, row.frames ?? undefined).map((slice) => ({
    predictionId: row.id,
    ...(row.sop_instance_uid === null ? {} : { sopInstanceUid: row.sop_instance_uid }),
    ...slice,
    prediction: slice.prediction as 'Normal' | 'Stone'
  }))))
  // The threshold of the model that classified the newest instance: a series re-sent after a model change is judged as now.
  const conclusion = concludeSeries(slices, { threshold: newest?.threshold ?? options.threshold, minAdjacentSlices: options.minAdjacentSlices })
  const finalAt = new Date(Date.parse(iso(rows.lastReceivedAt)) + options.idleSeconds * 1000)
  return {
    seriesInstanceUid,
    instances: { received: rows.instances.size + rows.failures.size, classified: rows.instances.size, failed: rows.failures.size },
    final: options.now >= finalAt,
    lastReceivedAt: iso(rows.lastReceivedAt),
    finalAt: finalAt.toISOString(),
    ...conclusion,
    ...(newest === undefined ? {} : { model: { name: newest.model_name, version: newest.model_version } }),
    slices,
    failures: [...rows.failures.values()].map((row) => ({
      ...(row.sop_instance_uid === null ? {} : { sopInstanceUid: row.sop_instance_uid }),
      code: row.code,
      receivedAt: iso(row.created_at)
    }))
  }
}

/** The study result from what the records store holds for it; undefined when nothing was received for it. Pure. */
export function studyResult (studyInstanceUid: string, rows: StudyRows, options: StudyResultOptions): StudyResult | undefined {
  const grouped = groupBySeries(rows)
  if (grouped.series.size === 0) return undefined
  const series = [...grouped.series].map(([uid, group]) => seriesResult(uid, group, options))
  return {
    studyInstanceUid,
    verdict: concludeStudy(series),
    final: series.every((s) => s.final),
    lastReceivedAt: series.map((s) => s.lastReceivedAt).sort().at(-1) as string,
    series,
    ...(grouped.leftOut > 0 ? { seriesLeftOut: grouped.leftOut } : {}),
    disclaimer: DISCLAIMER
  }
}
