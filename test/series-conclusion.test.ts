import t from 'tap'
import { concludeSeries, concludeStudy, orderSlices, type SliceResult } from '../inference/series-conclusion.js'

const THRESHOLD = 0.5
/** A series on 2.5 mm spacing from probabilities in slice order, handed over in reverse (arrival order is arbitrary). */
function series (probabilities: number[], spacing = 2.5): SliceResult[] {
  return probabilities.map((probability, i) => ({
    slicePosition: -100 + i * spacing,
    instanceNumber: i + 1,
    probability,
    prediction: probability >= THRESHOLD ? 'Stone' : 'Normal'
  })).reverse()
}

t.test('two adjacent positive slices make the series Stone, with their range and max P', async (t) => {
  const result = concludeSeries(series([0.1, 0.2, 0.6, 0.9, 0.3, 0.1]), { threshold: THRESHOLD })
  t.equal(result.conclusion, 'Stone')
  t.same(result.positiveRanges, [{
    first: 2, last: 3, slices: 2, fromPosition: -95, toPosition: -92.5, fromInstanceNumber: 3, toInstanceNumber: 4, maxProbability: 0.9
  }])
  t.equal(result.isolatedPositiveSlices, 0)
  t.equal(result.maxProbability, 0.9)
  t.equal(result.maxProbabilityIndex, 3, 'the index refers to the slice order, not the arrival order')
  t.same(result.rule, { threshold: THRESHOLD, minAdjacentSlices: 2, gapFactor: 1.5 })
})

t.test('isolated positive slices are reported but do not make the series Stone', async (t) => {
  const result = concludeSeries(series([0.7, 0.1, 0.2, 0.95, 0.1, 0.6]), { threshold: THRESHOLD })
  t.equal(result.conclusion, 'Normal')
  t.same(result.positiveRanges, [])
  t.equal(result.isolatedPositiveSlices, 3)
  t.equal(result.maxProbability, 0.95)
  t.equal(result.maxProbabilityIndex, 3)
})

t.test('one positive image twice at the same position is one slice of the rule, not a run of two', async (t) => {
  // The same slice sent again under another SOP Instance UID: on the old code the two counted as adjacent (distance 0)
  // and made the series Stone on a single positive image.
  const slices = series([0.1, 0.1, 0.9, 0.1, 0.1])
  const repeated = [...slices, { ...slices[2], instanceNumber: 6 }]
  const result = concludeSeries(repeated, { threshold: THRESHOLD })
  t.equal(result.conclusion, 'Normal')
  t.equal(result.isolatedPositiveSlices, 2, 'both shown as isolated')
  // two neighbouring positions, each sent twice, are still a run: of two places and four instances
  const pair = series([0.1, 0.8, 0.9, 0.1])
  const run = concludeSeries([...pair, ...pair.filter((slice) => slice.probability >= THRESHOLD).map((slice) => ({ ...slice }))], { threshold: THRESHOLD })
  t.equal(run.conclusion, 'Stone')
  t.same(run.positiveRanges.map((range) => range.slices), [4])
})

t.test('k = 1 is the per-slice rule; a larger k needs a longer run', async (t) => {
  const probabilities = [0.1, 0.6, 0.1, 0.7, 0.8, 0.1]
  t.equal(concludeSeries(series(probabilities), { threshold: THRESHOLD, minAdjacentSlices: 1 }).conclusion, 'Stone')
  t.equal(concludeSeries(series(probabilities), { threshold: THRESHOLD, minAdjacentSlices: 1 }).positiveRanges.length, 2)
  t.equal(concludeSeries(series(probabilities), { threshold: THRESHOLD, minAdjacentSlices: 3 }).conclusion, 'Normal')
  t.equal(concludeSeries(series([0.1, 0.6, 0.7, 0.8, 0.1]), { threshold: THRESHOLD, minAdjacentSlices: 3 }).conclusion, 'Stone')
})

t.test('a probability equal to the threshold is positive, as for a single slice', async (t) => {
  t.equal(concludeSeries(series([0.5, 0.5]), { threshold: 0.5 }).conclusion, 'Stone')
  t.equal(concludeSeries(series([0.5, 0.4999]), { threshold: 0.5 }).conclusion, 'Normal')
})

t.test('a missing slice (a gap in positions) breaks a run', async (t) => {
  const slices = series([0.1, 0.8, 0.1, 0.9, 0.1])
  const withoutMiddle = slices.filter((s) => s.instanceNumber !== 3)
  const result = concludeSeries(withoutMiddle, { threshold: THRESHOLD })
  t.equal(result.conclusion, 'Normal', 'slices 2 and 4 are 5 mm apart on a 2.5 mm series: not adjacent')
  t.equal(result.isolatedPositiveSlices, 2)
  const contiguous = series([0.1, 0.8, 0.9, 0.1]).filter((s) => s.instanceNumber !== 4)
  t.equal(concludeSeries(contiguous, { threshold: THRESHOLD }).conclusion, 'Stone', 'a missing slice outside the run changes nothing')
})

t.test('without positions, InstanceNumber orders the slices and a missing number breaks a run', async (t) => {
  const noPosition = (instanceNumber: number, probability: number): SliceResult => ({ instanceNumber, probability, prediction: probability >= THRESHOLD ? 'Stone' : 'Normal' })
  t.equal(concludeSeries([noPosition(5, 0.9), noPosition(4, 0.8), noPosition(1, 0.1)], { threshold: THRESHOLD }).conclusion, 'Stone')
  const gap = concludeSeries([noPosition(6, 0.9), noPosition(4, 0.8), noPosition(1, 0.1)], { threshold: THRESHOLD })
  t.equal(gap.conclusion, 'Normal')
  t.same(gap.positiveRanges, [])
})

t.test('without positions or numbers, the given order is the slice order', async (t) => {
  const bare = [0.1, 0.8, 0.9].map((probability) => ({ probability, prediction: 'x' }))
  const result = concludeSeries(bare, { threshold: THRESHOLD })
  t.equal(result.conclusion, 'Stone')
  t.same(result.positiveRanges.map(({ first, last }) => [first, last]), [[1, 2]])
})

t.test('irregular but gap-free spacing keeps a run together; positions sort descending series too', async (t) => {
  const slices: SliceResult[] = [0, 1.2, 2.5, 3.7, 5.0].map((position, i) => ({ slicePosition: -position, probability: [0.1, 0.9, 0.8, 0.7, 0.1][i], prediction: 'x' }))
  const result = concludeSeries(slices, { threshold: THRESHOLD })
  t.equal(result.conclusion, 'Stone')
  t.same(result.positiveRanges.map((r) => [r.fromPosition, r.toPosition, r.slices]), [[-3.7, -1.2, 3]])
})

t.test('a series smaller than k is judged on all its slices; an empty series is Undetermined', async (t) => {
  const one = concludeSeries(series([0.8]), { threshold: THRESHOLD })
  t.equal(one.conclusion, 'Stone')
  t.equal(one.rule.minAdjacentSlices, 1)
  t.equal(concludeSeries(series([0.2]), { threshold: THRESHOLD }).conclusion, 'Normal')
  const empty = concludeSeries([], { threshold: THRESHOLD })
  t.equal(empty.conclusion, 'Undetermined')
  t.equal(empty.maxProbability, undefined)
})

t.test('orderSlices: position, then InstanceNumber, then arrival; slices without a position last', async (t) => {
  const ordered = orderSlices([
    { id: 'a', instanceNumber: 2 },
    { id: 'b', slicePosition: 10, instanceNumber: 9 },
    { id: 'c', slicePosition: -5 },
    { id: 'd', slicePosition: 10, instanceNumber: 3 },
    { id: 'e', instanceNumber: 1 },
    { id: 'f' }
  ])
  t.same(ordered.map((s) => s.id), ['c', 'd', 'b', 'e', 'a', 'f'])
})

t.test('study verdict: any Stone series, else any Normal, else Undetermined', async (t) => {
  t.equal(concludeStudy([{ conclusion: 'Normal' }, { conclusion: 'Stone' }]), 'Stone')
  t.equal(concludeStudy([{ conclusion: 'Undetermined' }, { conclusion: 'Normal' }]), 'Normal')
  t.equal(concludeStudy([{ conclusion: 'Undetermined' }]), 'Undetermined')
  t.equal(concludeStudy([]), 'Undetermined')
})
