import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ownerGone, parseOwner, thisProcess, type ProcessOwner } from '../../platform/process-owner.js'

const PREFIX = 'keras-weights-'
/** `{ scope, pid }` of the process converting: see pidScope in platform/process-owner.ts. */
export const OWNER_FILE = 'owner.json'

/**
 * A folder whose owner cannot be asked is taken for abandoned at this age. A 200 MB .keras archive converted in
 * 7.7 s on a busy 2-core machine, at a peak RSS of 1.6 GB, most of the Deployment's 2 GiB limit: no conversion a
 * replica can hold in memory comes near. A container killed in each conversion leaves one folder per restart for
 * this long, three at Kubernetes' longest restart backoff (5 minutes).
 */
export const ABANDONED_AFTER_MS = 15 * 60_000

/** The folders of the conversions running in this process. */
const ownHere = new Set<string>()

async function readOwner (dir: string): Promise<ProcessOwner | undefined> {
  return parseOwner(await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''))
}

async function olderThan (dir: string, ms: number): Promise<boolean> {
  const stats = await stat(dir).catch(() => undefined)
  return stats !== undefined && Date.now() - stats.mtimeMs > ms
}

/**
 * Removes the folders of conversions that ended without removing theirs (a process killed by SIGKILL or for its
 * memory), which would otherwise stay for ever, one more at each restart killed again. Replicas may share the
 * folder and convert at the same time, so a folder goes only when its owner is known gone: its pid is not alive
 * in this pid namespace (or is this process's own, which it is not using), or, where its owner cannot be asked
 * (another container or host; no owner file: a conversion killed before writing it, or the version before this
 * one), when it is older than ABANDONED_AFTER_MS. Either rule alone falls short: by pid only, a restarted container
 * (a new pid namespace) could never reclaim its former self's folder, and two containers would take each other's
 * pid 1 for their own; by age only, a killed conversion's folder on a host would outlive the pid that tells at once.
 */
async function reclaimAbandoned (parent: string): Promise<void> {
  const names = await readdir(parent).catch(() => [])
  await Promise.all(names.filter((name) => name.startsWith(PREFIX)).map(async (name) => {
    const dir = join(parent, name)
    if (ownHere.has(dir)) return
    const owner = await readOwner(dir)
    const gone = owner !== undefined && await ownerGone(owner) === true
    // Another user's folder (a shared /tmp) cannot be removed; that is its owner's to do.
    if (gone || await olderThan(dir, ABANDONED_AFTER_MS)) await rm(dir, { recursive: true, force: true }).catch(() => {})
  }))
}

/** A private folder under `parent` for a conversion's files, the abandoned ones of earlier conversions removed first. */
export async function makeWorkDir (parent: string): Promise<string> {
  await reclaimAbandoned(parent)
  const dir = await mkdtemp(join(parent, PREFIX))
  ownHere.add(dir)
  try {
    await writeFile(join(dir, OWNER_FILE), JSON.stringify(await thisProcess()))
  } catch (error) {
    await removeWorkDir(dir)
    throw error
  }
  return dir
}

export async function removeWorkDir (dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
  ownHere.delete(dir)
}
