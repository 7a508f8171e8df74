import t from 'tap'
import { seriesSentence, toStudyDiagnosticReport } from '../inference/study-fhir.js'
import { studyResult } from '../records/study-result.js'
import type { StudyFailureRow } from '../records/study-rows.js'
import { MAX_STUDY_SERIES, type SeriesResult } from '../schemas/study.js'

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

t.test('a study whose rows name more than MAX_STUDY_SERIES series lists the first MAX_STUDY_SERIES to arrive and counts the rest', async (t) => {
  // One classified instance, then refused instances each naming a series of its own (as STOW-RS records them): on the
  // old code every one was a series of the answer and an Observation of the report (20,000 such: 9.3 MB of JSON and
  // 35 MB of FHIR per read).
  const extra = 5
  const at = (i: number): string => new Date(Date.UTC(2026, 11, 6, 2, 0, 0) + i).toISOString().replace('Z', '000Z')
  const instance = {
    id: '6a5e1fe2-55cf-4f11-b94c-0ebfc6c4f480', created_at: at(0), series_instance_uid: '2.25.1', sop_instance_uid: '2.25.1.1', instance_number: 1,
    slice_position: 0, probability_stone: 0.9, prediction: 'Stone', model_name: 'kidney-stone-cnn', model_version: '2.5.0', threshold: 0.2018
  }
  const failures: StudyFailureRow[] = Array.from({ length: MAX_STUDY_SERIES + extra - 1 }, (_, i) => ({
    created_at: at(i + 1), series_instance_uid: `2.25.2.${i}`, sop_instance_uid: `2.25.3.${i}`, code: 'UNSUPPORTED_SOP_CLASS'
  }))
  const study = studyResult('2.25', { instances: [instance], failures }, { idleSeconds: 30, minAdjacentSlices: 2, threshold: 0.2018, now: new Date() })
  if (study === undefined) throw new Error('no study')
  t.equal(study.series.length, MAX_STUDY_SERIES, 'the first MAX_STUDY_SERIES series')
  t.equal(study.seriesLeftOut, extra, 'the others counted')
  t.same(study.series.map((s) => s.seriesInstanceUid).slice(0, 2), ['2.25.1', '2.25.2.0'], 'in arrival order')
  t.equal(study.series.at(-1)?.seriesInstanceUid, `2.25.2.${MAX_STUDY_SERIES - 2}`)
  t.equal(study.verdict, 'Stone')
  const report = toStudyDiagnosticReport(study)
  t.equal(report.contained?.filter((r) => r.resourceType === 'Observation').length, MAX_STUDY_SERIES, 'one Observation per series listed')
  t.match(report.conclusion, `${extra} more series of this study were not read: a report covers its first ${MAX_STUDY_SERIES} series.`)
  const fewer = studyResult('2.25', { instances: [instance], failures: failures.slice(0, 3) }, { idleSeconds: 30, minAdjacentSlices: 2, threshold: 0.2018, now: new Date() })
  t.notOk(fewer !== undefined && 'seriesLeftOut' in fewer, 'absent when every series is listed')
  t.notMatch(fewer === undefined ? '' : toStudyDiagnosticReport(fewer).conclusion, /not read/)
})
