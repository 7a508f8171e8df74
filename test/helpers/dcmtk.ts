import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * dcmtk's command-line tools (a DICOM implementation nobody here wrote), installed by `npm test`'s pretest
 * (scripts/apt-install.sh dcmtk). A missing tool fails the test with the command that installs it.
 */
export async function dcmtk (tool: string, args: string[]): Promise<string> {
  try {
    return (await run(tool, args, { maxBuffer: 64 * 1024 * 1024 })).stdout
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${tool} is missing: run \`bash scripts/apt-install.sh dcmtk\` (npm test's pretest does)`)
    throw error
  }
}

/** A scratch folder under the OS temp dir, removed on teardown. */
export async function scratchDir (t: { teardown: (fn: () => unknown) => void }, prefix = 'kidney-dcmtk-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

/**
 * `bytes` with the data elements set by `dcmodify -i "(gggg,eeee)=value"` (values as dcmodify takes them, e.g.
 * `40\\-600`), or removed by `dcmodify -e "(gggg,eeee)"` for a value of null.
 */
export async function modified (dir: string, bytes: Buffer, values: Record<string, string | null>, name = 'modified.dcm'): Promise<Buffer> {
  const file = join(dir, name)
  await writeFile(file, bytes)
  const changes = Object.entries(values).flatMap(([tag, value]) => value === null ? ['-e', tag] : ['-i', `${tag}=${value}`])
  await dcmtk('dcmodify', ['-q', '-nb', ...changes, file])
  return await readFile(file)
}

/** `bytes` transcoded by dcmtk's `tool` (dcmcjpeg, dcmdjpeg, dcmconv, ...) with its options. */
export async function transcoded (dir: string, bytes: Buffer, tool: string, options: string[], name = 'in.dcm'): Promise<Buffer> {
  const input = join(dir, name)
  const output = join(dir, `${tool}-${options.join('')}-${name}`)
  await writeFile(input, bytes)
  await dcmtk(tool, [...options, input, output])
  return await readFile(output)
}
