/** Rows one retention statement deletes, and statements in one pass: a pass never holds the database for long. */
const SWEEP_ROWS = 500
const SWEEP_STATEMENTS_PER_PASS = 4

export interface Swept {
  predictions: number
  auditEvents: number
  failedInstances: number
}

/**
 * One bounded retention pass: at most SWEEP_STATEMENTS_PER_PASS statements of SWEEP_ROWS rows per kind, each through
 * `deleteExpired` (RecordStore.deleteExpired), each statement's rows handed to `counted`. `backlog`: it stopped at its
 * bound, so the next pass should come soon.
 */
export async function sweepPass (
  deleteExpired: (limit: number) => Promise<Swept>,
  counted: (deleted: Swept) => void
): Promise<Swept & { backlog: boolean }> {
  const swept = { predictions: 0, auditEvents: 0, failedInstances: 0, backlog: false }
  for (let statement = 0; statement < SWEEP_STATEMENTS_PER_PASS; statement++) {
    const deleted = await deleteExpired(SWEEP_ROWS)
    counted(deleted)
    swept.predictions += deleted.predictions
    swept.auditEvents += deleted.auditEvents
    swept.failedInstances += deleted.failedInstances
    swept.backlog = Object.values(deleted).some((rows) => rows === SWEEP_ROWS)
    if (!swept.backlog) break
  }
  return swept
}
