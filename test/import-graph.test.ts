import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// inference/ is read the way the bytes of an upload flow (inference/preprocess.ts `prepareModelInput`): no file
// imports a later step of the path, and no files import each other, directly or round a longer loop.
const INFERENCE = fileURLToPath(new URL('../inference/', import.meta.url))
const PATH_STEPS = ['sniff.ts', 'image-header.ts', 'dicom/', 'decode.ts', 'preprocess.ts', 'tensor.ts']

async function sourceFiles (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  const nested = await Promise.all(entries.map(async (entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return await sourceFiles(path)
    return /\.(ts|js)$/.test(entry.name) ? [path] : []
  }))
  return nested.flat()
}

/** Relative imports (static, dynamic, tsImport) of one file, as paths under inference/. */
async function importsOf (file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8')
  const specifiers = [...text.matchAll(/(?:from|import\(|tsImport\()\s*'(\.{1,2}\/[^']+)'/g)].map((match) => match[1])
  return specifiers.map((specifier) => relative(INFERENCE, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts'))
    .filter((path) => !path.startsWith('..'))
}

const files = (await sourceFiles(INFERENCE)).map((file) => relative(INFERENCE, file))
const graph = new Map(await Promise.all(files.map(async (file) => [file, await importsOf(join(INFERENCE, file))] as const)))

/** Every import cycle (strongly connected set of more than one file, or a file importing itself). */
function cycles (): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const found: string[][] = []
  const visit = (file: string): void => {
    index.set(file, index.size)
    low.set(file, index.get(file)!)
    stack.push(file)
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue
      if (!index.has(next)) {
        visit(next)
        low.set(file, Math.min(low.get(file)!, low.get(next)!))
      } else if (stack.includes(next)) {
        low.set(file, Math.min(low.get(file)!, index.get(next)!))
      }
    }
    if (low.get(file) === index.get(file)) {
      const members: string[] = []
      let member: string | undefined
      do { member = stack.pop()!; members.push(member) } while (member !== file)
      if (members.length > 1 || graph.get(file)?.includes(file) === true) found.push(members.sort())
    }
  }
  for (const file of graph.keys()) if (!index.has(file)) visit(file)
  return found
}

const step = (file: string): number => PATH_STEPS.findIndex((prefix) => file === prefix || (prefix.endsWith('/') && file.startsWith(prefix)))

t.test('inference/ has no import cycle', async (t) => {
  t.ok(graph.size > 20, `${graph.size} files read`)
  t.same(cycles(), [])
})

t.test('no step of the upload path imports a later one', async (t) => {
  const backwards = [...graph].flatMap(([file, imports]) => imports
    .filter((target) => step(file) !== -1 && step(target) > step(file))
    .map((target) => `${file} -> ${target}`))
  t.same(backwards, [])
  t.ok(graph.get('preprocess.ts')?.includes('sniff.ts'), 'the path itself (preprocess.ts) starts at the sniffing step')
})
