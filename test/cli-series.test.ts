import t from 'tap'
import type { FileResult } from '../cli/output.js'
import { concludeSeriesOf, seriesLine } from '../cli/series.js'

// The CLI concludes each series as the service's study results do, and the service counts an instance sent again
// once (records/study-result.ts): the same SOP instance in two files must be one slice, not two adjacent ones.
const THRESHOLD = 0.5

function slice (file: string, sopInstanceUid: string, slicePosition: number, stone: number): FileResult {
  return {
    file,
    prediction: stone >= THRESHOLD ? 'Stone' : 'Normal',
    probabilities: { Normal: 1 - stone, Stone: stone },
    threshold: THRESHOLD,
    dicom: { studyInstanceUid: '2.25.1', seriesInstanceUid: '2.25.2', sopInstanceUid, slicePosition }
  } as unknown as FileResult
}

const normals = [1, 2, 3, 4].map((i) => slice(`n${i}.dcm`, `2.25.3.${i}`, -5 * i, 0.1))

t.test('one positive slice among normal neighbours stays an isolated slice when its file is there twice', async (t) => {
  const once = concludeSeriesOf([...normals, slice('s5.dcm', '2.25.3.5', -25, 0.9)])
  const twice = concludeSeriesOf([...normals, slice('s5.dcm', '2.25.3.5', -25, 0.9), slice('s5-copy.dcm', '2.25.3.5', -25, 0.9)])
  t.equal(once[0].conclusion.conclusion, 'Normal', 'one positive slice of five, rule k=2')
  t.equal(twice[0].slices, 5, 'the copy is the same SOP instance: five slices, not six')
  t.equal(twice[0].conclusion.conclusion, 'Normal', 'the copy does not make a run of two adjacent positive slices')
  t.equal(twice[0].conclusion.isolatedPositiveSlices, 1)
})

t.test('the first file of one SOP instance gives its result, as one POST /predict/batch request keeps the first', async (t) => {
  const [series] = concludeSeriesOf([...normals, slice('a.dcm', '2.25.3.5', -25, 0.9), slice('b.dcm', '2.25.3.5', -25, 0.2)])
  t.equal(series.slices, 5)
  // The later file replaced the earlier until 2026-12-05.
  t.equal(series.conclusion.maxProbability, 0.9, 'a.dcm, the first file')
})

t.test('distinct instances at the same place are still two slices', async (t) => {
  const [series] = concludeSeriesOf([...normals, slice('s5.dcm', '2.25.3.5', -25, 0.9), slice('s6.dcm', '2.25.3.6', -30, 0.9)])
  t.equal(series.slices, 6)
  t.equal(series.conclusion.conclusion, 'Stone', 'two adjacent positive instances')
})

t.test('the series line gives a highest P(Stone) near the threshold with the decimals that show its side', async (t) => {
  // On the old code "Normal; 5 slice(s), max P(Stone) 0.500, ..., P >= 0.5" for a slice at 0.4996.
  const [summary] = concludeSeriesOf([...normals, slice('s5.dcm', '2.25.3.5', -25, 0.4996)])
  t.match(seriesLine(summary), /: Normal; 5 slice\(s\), max P\(Stone\) 0\.4996, rule: k=2 adjacent slices at P >= 0\.5$/)
})
