import t from 'tap'
import type { StudyFailureRow, StudyInstanceRow } from '../records/store.js'
import { studyResult } from '../records/study-result.js'

// Who owns a study (records/study-result.ts), on rows as the records store returns them: the caller that first had
// one of its instances classified. Its own rows alone make the study; a refusal claims nothing.

const at = (second: number): string => `2026-12-05T10:00:0${second}.000000`
const refused = (caller: string, sop: string, second: number): StudyFailureRow =>
  ({ created_at: at(second), caller, series_instance_uid: '2.25.1', sop_instance_uid: sop, code: 'OVERLOADED' })
const classified = (caller: string, sop: string, second: number): StudyInstanceRow => ({
  id: `id-${sop}`, created_at: at(second), caller, series_instance_uid: '2.25.1', sop_instance_uid: sop, instance_number: null,
  slice_position: null, probability_stone: 0.01, prediction: 'Normal', model_name: 'm', model_version: '1', threshold: 0.2
})
const options = { idleSeconds: 30, minAdjacentSlices: 2, threshold: 0.2, now: new Date('2026-12-05T11:00:00Z') }
const counts = (instances: StudyInstanceRow[], failures: StudyFailureRow[]): unknown =>
  studyResult('2.25.9', { instances, failures }, options)?.series[0].instances

t.test('while nothing of a study is classified, every caller\'s refusals show', async (t) => {
  t.same(counts([], [refused('dicom:MODALITY', '2.25.11', 1), refused('api-key:pacs', '2.25.12', 2)]), { received: 2, classified: 0, failed: 2 })
})

t.test('once one instance is classified, the study is its caller\'s: others\' refusals and results do not count', async (t) => {
  const failures = [refused('dicom:MODALITY', '2.25.11', 1), refused('api-key:pacs', '2.25.12', 4)]
  const instances = [classified('api-key:pacs', '2.25.13', 2), classified('api-key:alice', '2.25.14', 3), classified('api-key:pacs', '2.25.11', 5)]
  t.same(counts(instances, failures), { received: 3, classified: 2, failed: 1 }, 'the refusal before the first classification is another caller\'s too')
  t.same(counts([classified('api-key:alice', '2.25.14', 1), ...instances.slice(0, 1)], []), { received: 1, classified: 1, failed: 0 }, 'whoever classified first owns it, here alice')
})
