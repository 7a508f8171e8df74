import fp from 'fastify-plugin'
import type { Caller } from '../../records/record.js'
import { studyResult } from '../../records/study-result.js'
import type { StudyResult } from '../../schemas/study.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * A study's result as it stands now, from the records store only (so every replica answers the same);
     * undefined when nothing of it is recorded for `caller` (undefined caller: everyone's instances).
     */
    studyResult: (studyInstanceUid: string, caller?: Caller) => Promise<StudyResult | undefined>
  }
}

export default fp(async (app) => {
  const { idleSeconds, minAdjacentSlices } = app.config.series
  app.decorate('studyResult', async (studyInstanceUid: string, caller?: Caller): Promise<StudyResult | undefined> => {
    // The conclusion needs the model's threshold: while the model loads this is 503 MODEL_NOT_READY at once, as
    // /predict answers then, not a request held until the load ends.
    const { threshold } = app.model.get().spec
    const rows = await app.records.readStudy(studyInstanceUid, caller)
    return studyResult(studyInstanceUid, rows, { idleSeconds, minAdjacentSlices, threshold, now: new Date() })
  })
}, { name: 'studies', dependencies: ['config', 'records', 'model'] })
