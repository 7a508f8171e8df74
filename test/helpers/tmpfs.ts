import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

export interface Tmpfs {
  dir: string
  /** `mount -o remount,<options>`, e.g. 'ro' or 'rw'. */
  remount: (options: string) => Promise<void>
  unmount: () => Promise<void>
}

const run = promisify(execFile)

/**
 * A real file system of `size` (mount's notation: '1m', '120m') on a new temporary directory of mode 0700, unmounted
 * and removed on teardown: a disk that fills up, or turns read-only, under the service. Needs root, as CI runs.
 */
export async function mountTmpfs (t: { teardown: (fn: () => unknown) => void }, size: string): Promise<Tmpfs> {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-tmpfs-'))
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir])
  const unmount = async (): Promise<void> => { await run('umount', [dir]) }
  t.teardown(async () => { await unmount().catch(() => undefined); await rm(dir, { recursive: true, force: true }) })
  return { dir, unmount, remount: async (options) => { await run('mount', ['-o', `remount,${options}`, dir]) } }
}
