import t from 'tap'
import { seriesSentence } from '../inference/study-fhir.js'
import type { SeriesResult } from '../schemas/study.js'

// A series like the docs' g094 example: a run of four positive slices and one positive slice on its own.
function stoneSeries (isolatedPositiveSlices: number): SeriesResult {
  const at = '2026-12-05T10:00:00.000Z'
  return {
    seriesInstanceUid: '2.25.201',
    instances: { received: 9, classified: 9, failed: 0 },
    final: true,
    lastReceivedAt: at,
    finalAt: at,
    conclusion: 'Stone',
    positiveRanges: [{ first: 5, last: 8, slices: 4, fromPosition: 30, toPosition: 45, maxProbability: 1 }],
    isolatedPositiveSlices,
    maxProbability: 1,
    rule: { threshold: 0.2018, minAdjacentSlices: 2, gapFactor: 1.5 },
    slices: [],
    failures: []
  }
}

t.test('a Stone series sentence names the isolated positive slices the rule did not count', async (t) => {
  const sentence = seriesSentence(stoneSeries(1))
  t.match(sentence, /kidney stone suspected on 4 slices from 30\.0 mm to 45\.0 mm/)
  t.match(sentence, /; 1 isolated positive slice not counted;/, 'in the singular for one (old code: "1 isolated positive slices")')
  t.match(seriesSentence(stoneSeries(2)), /; 2 isolated positive slices not counted;/)
  t.notMatch(seriesSentence(stoneSeries(0)), /isolated/, 'and says nothing of them when there are none')
})

t.test('a Normal series sentence always gives the count', async (t) => {
  const normal: SeriesResult = { ...stoneSeries(0), conclusion: 'Normal', positiveRanges: [], maxProbability: 0.1 }
  t.match(seriesSentence(normal), /no kidney stone detected; highest P\(Stone\) 0\.100; 0 isolated positive slices not counted/)
})

t.test('the series sentence states the rule\'s threshold as applied, and the highest P(Stone) with the decimals that show its side', async (t) => {
  // On the old code: "no kidney stone detected; highest P(Stone) 0.202; ... rule: at least 1 adjacent slices with
  // P(Stone) >= 0.202", of a one-slice series whose slice was 0.2016 against the threshold 0.2018.
  const normal: SeriesResult = { ...stoneSeries(0), conclusion: 'Normal', positiveRanges: [], maxProbability: 0.2016, rule: { threshold: 0.2018, minAdjacentSlices: 1, gapFactor: 1.5 } }
  const sentence = seriesSentence(normal)
  t.match(sentence, /highest P\(Stone\) 0\.2016;/)
  t.match(sentence, /rule: at least 1 adjacent slice with P\(Stone\) >= 0\.2018\./, 'in the singular for k = 1 (old code: "1 adjacent slices")')
})
