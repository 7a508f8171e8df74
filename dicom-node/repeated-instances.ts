import { DuplicateInstanceError } from './multipart-related.js'

/** One instance of a request: its bytes and, when they name one, its SOP Instance UID. */
export interface RequestInstance {
  bytes: Buffer
  sopInstanceUid?: string
}

/**
 * The outcome of each instance of one request, in request order, each SOP Instance UID classified once. A later
 * instance repeating an earlier one's UID with the same bytes shares its outcome (one classification, one record);
 * with other bytes it is refused (DUPLICATE_SOP_INSTANCE), not left to which record commits first: GET /studies shows
 * the newest record of an instance, and two classified at once commit in either order. Instances without a UID are
 * each their own. STOW-RS and POST /predict/batch use it alike. Every repeat sees the first outcome whatever `classify`
 * does: Promise.all's map runs each callback up to its first await in request order, and the first instance's entry is
 * set before its callback awaits.
 */
export async function oncePerInstance<T> (
  instances: readonly RequestInstance[],
  classify: (index: number) => Promise<T>,
  refuse: (index: number, error: DuplicateInstanceError) => T
): Promise<T[]> {
  const first = new Map<string, { bytes: Buffer, outcome: Promise<T> }>()
  return await Promise.all(instances.map(async ({ bytes, sopInstanceUid }, index) => {
    const earlier = sopInstanceUid === undefined ? undefined : first.get(sopInstanceUid)
    if (sopInstanceUid !== undefined && earlier !== undefined) {
      return earlier.bytes.equals(bytes) ? await earlier.outcome : refuse(index, new DuplicateInstanceError(sopInstanceUid))
    }
    const outcome = classify(index)
    if (sopInstanceUid !== undefined) first.set(sopInstanceUid, { bytes, outcome })
    return await outcome
  }))
}
