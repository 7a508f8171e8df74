import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { processAlive } from '../process-alive.js'

const PREFIX = 'keras-weights-'
/** `{ scope, pid }` of the process converting: see pidScope. */
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

let scope: Promise<string> | undefined
/**
 * Where a pid means something: a pid names a process only in its pid namespace on its machine. Two containers on one
 * volume both run node as pid 1, and a pid written on another host names nothing here. The boot id tells the machine
 * (the host name, where there is none), the namespace link the pid namespace; both are Linux's.
 */
async function pidScope (): Promise<string> {
  scope ??= Promise.all([
    readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => ''),
    readlink('/proc/self/ns/pid').catch(() => '')
  ]).then(([boot, namespace]) => `${hostname()} ${boot.trim()} ${namespace}`)
  return await scope
}

async function readOwner (dir: string): Promise<{ scope: string, pid: number } | undefined> {
  try {
    const owner = JSON.parse(await readFile(join(dir, OWNER_FILE), 'utf8')) as { scope?: unknown, pid?: unknown }
    if (typeof owner.scope === 'string' && Number.isInteger(owner.pid) && (owner.pid as number) > 0) return owner as { scope: string, pid: number }
  } catch {}
  return undefined
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
  const here = await pidScope()
  const names = await readdir(parent).catch(() => [])
  await Promise.all(names.filter((name) => name.startsWith(PREFIX)).map(async (name) => {
    const dir = join(parent, name)
    if (ownHere.has(dir)) return
    const owner = await readOwner(dir)
    const ownerGone = owner?.scope === here && (owner.pid === process.pid || !processAlive(owner.pid))
    // Another user's folder (a shared /tmp) cannot be removed; that is its owner's to do.
    if (ownerGone || await olderThan(dir, ABANDONED_AFTER_MS)) await rm(dir, { recursive: true, force: true }).catch(() => {})
  }))
}

/** A private folder under `parent` for a conversion's files, the abandoned ones of earlier conversions removed first. */
export async function makeWorkDir (parent: string): Promise<string> {
  await reclaimAbandoned(parent)
  const dir = await mkdtemp(join(parent, PREFIX))
  ownHere.add(dir)
  try {
    await writeFile(join(dir, OWNER_FILE), JSON.stringify({ scope: await pidScope(), pid: process.pid }))
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
