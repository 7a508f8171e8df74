import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { convertKerasModel } from '../inference/keras/convert.js'
import { ABANDONED_AFTER_MS, OWNER_FILE } from '../inference/keras/work-dir.js'
import { PYTHON, SHARED_DIR } from './keras/inputs.js'

// A .keras archive's weights are unpacked into MODEL_CACHE_DIR/keras-weights-* while it is converted; a process
// killed meanwhile left its folder for ever. Replicas may share the folder, so a live conversion's must stay.
const dir = await mkdtemp(join(tmpdir(), 'keras-work-dir-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
// The Keras 3 Sequential model of test/keras-functional.test.ts, re-saved as a .keras archive by the Python side.
await promisify(execFile)(PYTHON, [new URL('./keras/build_functional.py', import.meta.url).pathname, dir,
  join(SHARED_DIR, 'models/keras/mennaghanem-kidney-cnn-4class.h5')])
const model = join(dir, 'sequential-k3.keras')
const HOLDER = new URL('./keras/hold-weights.ts', import.meta.url).pathname

const weightsFolders = async (cacheDir: string): Promise<string[]> =>
  (await readdir(cacheDir)).filter((name) => name.startsWith('keras-weights-')).sort()

/** A child process with the archive open, its weights unpacked: the folder it made, and the child. */
async function holdOpen (t: Test, cacheDir: string): Promise<{ child: ChildProcess, folder: string }> {
  const before = await weightsFolders(cacheDir)
  const child = spawn(process.execPath, ['--import=tsx', HOLDER, model, cacheDir], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const [line] = await Promise.race([once(createInterface({ input: child.stdout! }), 'line'), once(child, 'exit').then(() => ['exited'])]) as [string]
  t.equal(line, 'open', `child ${child.pid} has the archive open`)
  const added = (await weightsFolders(cacheDir)).filter((name) => !before.includes(name))
  t.equal(added.length, 1, 'it unpacked the weights into a folder of its own')
  return { child, folder: added[0] }
}

t.test('a conversion removes the folder of one killed before its end, never that of a live one', async (t) => {
  const cacheDir = join(dir, 'cache')
  await mkdir(cacheDir)
  const live = await holdOpen(t, cacheDir)
  const killed = await holdOpen(t, cacheDir)
  killed.child.kill('SIGKILL')
  await once(killed.child, 'exit')
  t.same(await weightsFolders(cacheDir), [killed.folder, live.folder].sort(), 'the killed process left its folder')
  await convertKerasModel(model, cacheDir)
  t.same(await weightsFolders(cacheDir), [live.folder], 'the next conversion removed it; the live one is kept')

  // As a process killed earlier with this process's pid leaves it (a restart that got the same pid).
  const owner = JSON.parse(await readFile(join(cacheDir, live.folder, OWNER_FILE), 'utf8')) as { pid: number }
  t.equal(owner.pid, live.child.pid, 'a folder names its owner')
  await mkdir(join(cacheDir, 'keras-weights-same-pid'))
  await writeFile(join(cacheDir, 'keras-weights-same-pid', OWNER_FILE), JSON.stringify({ ...owner, pid: process.pid }))
  await convertKerasModel(model, cacheDir)
  t.same(await weightsFolders(cacheDir), [live.folder], 'so is the folder of an earlier process with this pid')

  live.child.stdin!.end()
  const [code] = await once(live.child, 'exit') as [number]
  t.equal(code, 0, 'the live conversion ended normally')
  t.same(await weightsFolders(cacheDir), [], 'and removed its own folder')
})

t.test('a folder whose owner cannot be asked is removed only when older than any conversion', async (t) => {
  const cacheDir = join(dir, 'cache-unaskable')
  await mkdir(cacheDir)
  // A pid from another host or container names nothing here: this one is of a process gone here (a child that ran).
  const child = spawn(process.execPath, ['-e', ''])
  await once(child, 'exit')
  const elsewhere = JSON.stringify({ scope: 'another-host 00000000-0000-0000-0000-000000000000 pid:[4026531836]', pid: child.pid })
  const longAgo = new Date(Date.now() - 2 * ABANDONED_AFTER_MS)
  for (const [name, owner, old] of [
    ['keras-weights-elsewhere-young', elsewhere, false],
    ['keras-weights-elsewhere-old', elsewhere, true],
    // No owner file: a conversion killed before writing it, or one of the version without owner files.
    ['keras-weights-unowned-young', undefined, false],
    ['keras-weights-unowned-old', undefined, true]
  ] as const) {
    await mkdir(join(cacheDir, name))
    await writeFile(join(cacheDir, name, 'model.weights.h5'), 'weights')
    if (owner !== undefined) await writeFile(join(cacheDir, name, OWNER_FILE), owner)
    if (old) await utimes(join(cacheDir, name), longAgo, longAgo)
  }
  await convertKerasModel(model, cacheDir)
  t.same(await weightsFolders(cacheDir), ['keras-weights-elsewhere-young', 'keras-weights-unowned-young'])
})
