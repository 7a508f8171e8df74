import t from 'tap'
import { NO_RECORDS, RECORDS_PGLITE, RECORDS_POSTGRES, recordsCostFor } from '../bench/records.js'
import { ceilingFor, ceilingLines, median, medianRun, targetsFor, type LimitRun, type ServerRun } from '../bench/report.js'

// The benchmark's verdicts come from these functions; the runs below are made up so that a ratio taken across
// rounds, or a mean instead of a median, would give a different answer than the one asserted.

function run (round: number, connections: number, requestsPerSecond: number, p50 = 10, p99 = 15, errors = 0): ServerRun {
  return {
    round,
    imageSet: 'set',
    connections,
    seconds: 10,
    responses: requestsPerSecond * 10,
    requestsPerSecond,
    latencyMs: { p50, p95: p99, p99, max: p99 },
    errors,
    loadGeneratorCores: 0.1,
    statuses: { 200: requestsPerSecond * 10 },
    cpuMsPerRequest: 5,
    loadAverage1m: 1
  }
}

function limitRun (round: number, imagesPerSecond: number): LimitRun {
  return { round, imageSet: 'set', batchSize: 4, images: imagesPerSecond * 6, imagesPerSecond, cpuMsPerImage: 4, loadAverage1m: 1 }
}

t.test('median of odd and even counts, ignoring values that are not numbers', async (t) => {
  t.equal(median([5, 1, 3]), 3)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(median([NaN, 7, 1]), 4)
  t.ok(Number.isNaN(median([])))
})

t.test('each target is a ratio within one round; the median of the rounds decides', async (t) => {
  // the VM is twice as fast in round 1: every contender doubles, so every per-round ratio stays the same
  const service = [run(0, 8, 90, 10, 18), run(1, 8, 180, 5, 9), run(2, 8, 100, 10, 25), run(0, 1, 50)]
  const baseline = [run(0, 8, 30), run(1, 8, 60), run(2, 8, 40)]
  const limit = [limitRun(0, 100), limitRun(1, 200), limitRun(2, 140)]
  const targets = targetsFor(3, 'set', service, baseline, limit)
  t.same(targets.serviceVsBaseline.perRound, [3, 3, 2.5])
  t.equal(targets.serviceVsBaseline.median, 3)
  t.equal(targets.serviceVsBaseline.met, true)
  t.same(targets.serviceVsLimit.perRound, [0.9, 0.9, 0.714])
  t.equal(targets.serviceVsLimit.met, true)
  t.same(targets.p99OverP50.perRound, [1.8, 1.8, 2.5])
  t.equal(targets.p99OverP50.median, 1.8)
  t.equal(targets.p99OverP50.met, true, 'one bad round does not decide')
  t.equal(targets.serviceErrors.met, true)
})

t.test('a target is missed when the median misses it, and any service error fails the error target', async (t) => {
  const service = [run(0, 8, 80), run(1, 8, 85, 10, 22), run(2, 8, 95, 10, 21, 1), run(0, 32, 90, 10, 15, 2)]
  const baseline = [run(0, 8, 30), run(1, 8, 30), run(2, 8, 30)]
  const targets = targetsFor(3, 'set', service, baseline, [limitRun(0, 100), limitRun(1, 100), limitRun(2, 100)])
  t.equal(targets.serviceVsBaseline.median, 2.833)
  t.equal(targets.serviceVsBaseline.met, false)
  t.equal(targets.serviceVsLimit.median, 0.85)
  t.equal(targets.p99OverP50.median, 2.1)
  t.equal(targets.p99OverP50.met, false)
  t.equal(targets.serviceErrors.median, 3, 'errors of every connection count, summed')
  t.equal(targets.serviceErrors.met, false)
})

t.test('a round without a run gives no ratio for that round rather than a wrong one', async (t) => {
  const targets = targetsFor(2, 'set', [run(0, 8, 90)], [run(0, 8, 30), run(1, 8, 30)], [limitRun(0, 100), limitRun(1, 100)])
  t.equal(targets.serviceVsBaseline.perRound[0], 3)
  t.ok(Number.isNaN(targets.serviceVsBaseline.perRound[1]))
  t.equal(targets.serviceVsBaseline.median, 3)
})

t.test('the table cell is the median of each figure over the rounds, errors summed', async (t) => {
  const m = medianRun([run(0, 8, 100, 10, 20, 1), run(1, 8, 300, 30, 60), run(2, 8, 200, 20, 25, 2)])
  t.equal(m.requestsPerSecond, 200)
  t.equal(m.p50, 20)
  t.equal(m.p99, 25)
  t.equal(m.errors, 3)
})

t.test('the ceiling is the limit over the baseline within each round, and says when 3x is out of the service\'s reach', async (t) => {
  const baseline = [run(0, 8, 40), run(1, 8, 80), run(2, 8, 50), run(0, 1, 10)]
  const below = ceilingFor(3, 'set', baseline, [limitRun(0, 110), limitRun(1, 230), limitRun(2, 160)])
  t.same(below.perRound, [2.75, 2.875, 3.2], 'each round against its own baseline run at 8 connections')
  t.equal(below.median, 2.875)
  t.equal(below.allowsServiceTarget, false)
  t.match(ceilingLines({ set: below })[0], /limitVsBaseline = 2\.88 .*cannot meet serviceVsBaseline >= 3/)
  const above = ceilingFor(3, 'set', baseline, [limitRun(0, 130), limitRun(1, 250), limitRun(2, 140)])
  t.equal(above.median, 3.125)
  t.equal(above.allowsServiceTarget, true)
  t.match(ceilingLines({ set: above })[0], /within reach/)
})

t.test('the recording cost is the ratio with records over without within each round, the median deciding', async (t) => {
  // round 1 runs on a VM twice as fast: every variant doubles, the per-round ratios do not change
  const runs = {
    [NO_RECORDS]: [run(0, 8, 100), run(1, 8, 200), run(2, 8, 100)],
    [RECORDS_PGLITE]: [run(0, 8, 97), run(1, 8, 192), run(2, 8, 90)],
    [RECORDS_POSTGRES]: [run(0, 8, 90), run(1, 8, 200), run(2, 8, 93)]
  }
  const cost = recordsCostFor(3, 'set', runs)
  t.same(Object.keys(cost), [`${RECORDS_PGLITE} / ${NO_RECORDS}`, `${RECORDS_POSTGRES} / ${NO_RECORDS}`])
  t.same(cost[`${RECORDS_PGLITE} / ${NO_RECORDS}`].perRound, [0.97, 0.96, 0.9])
  t.equal(cost[`${RECORDS_PGLITE} / ${NO_RECORDS}`].median, 0.96)
  t.equal(cost[`${RECORDS_PGLITE} / ${NO_RECORDS}`].met, true)
  t.equal(cost[`${RECORDS_POSTGRES} / ${NO_RECORDS}`].median, 0.93, 'a mean of the rates (0.96) would pass; the per-round median does not')
  t.equal(cost[`${RECORDS_POSTGRES} / ${NO_RECORDS}`].met, false)
})
