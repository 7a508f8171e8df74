import { DuplicateInstanceError } from './multipart-related.js'

/** One instance of a request: its bytes and, when they name one, its SOP Instance UID. */
export interface RequestInstance {
  /** Two instances of one UID are the same when these are equal: the bytes, or a digest of them (the CLI's). */
  bytes: Buffer
  sopInstanceUid?: string
}

/**
 * The instances of one request (or one CLI run), in order, each SOP Instance UID classified once. A later instance
 * repeating an earlier one's UID with the same bytes shares its outcome (one classification, one record); with other
 * bytes it is refused (DUPLICATE_SOP_INSTANCE), not left to which record commits first: GET /studies shows the newest
 * record of an instance, and two classified at once commit in either order. Instances without a UID are each their
 * own. Every repeat sees the first outcome whatever `classify` does: the first instance's entry is set before
 * `outcome` awaits anything.
 */
export class RepeatedInstances<T> {
  private readonly first = new Map<string, { bytes: Buffer, outcome: Promise<T> }>()

  /** `within`: what the instances came in, as the refusal names it to the sender (an HTTP request, a CLI run). */
  constructor (private readonly within: 'request' | 'run') {}

  async outcome ({ bytes, sopInstanceUid }: RequestInstance, classify: () => Promise<T>, refuse: (error: DuplicateInstanceError) => T): Promise<T> {
    const earlier = sopInstanceUid === undefined ? undefined : this.first.get(sopInstanceUid)
    if (sopInstanceUid !== undefined && earlier !== undefined) {
      return earlier.bytes.equals(bytes) ? await earlier.outcome : refuse(new DuplicateInstanceError(sopInstanceUid, this.within))
    }
    const outcome = classify()
    if (sopInstanceUid !== undefined) this.first.set(sopInstanceUid, { bytes, outcome })
    return await outcome
  }
}

/**
 * The outcome of each instance of one request, in request order (RepeatedInstances). STOW-RS and POST /predict/batch
 * use it alike; Promise.all's map runs each callback up to its first await in request order.
 */
export async function oncePerInstance<T> (
  instances: readonly RequestInstance[],
  classify: (index: number) => Promise<T>,
  refuse: (index: number, error: DuplicateInstanceError) => T
): Promise<T[]> {
  const repeated = new RepeatedInstances<T>('request')
  return await Promise.all(instances.map(async (instance, index) =>
    await repeated.outcome(instance, async () => await classify(index), (error) => refuse(index, error))))
}
