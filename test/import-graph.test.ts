import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// inference/ is read the way the bytes of an upload flow (inference/preprocess.ts `prepareModelInput`): no file
// imports a later step of the path, and no files import each other, directly or round a longer loop.
const ROOT = fileURLToPath(new URL('../', import.meta.url))
const INFERENCE = join(ROOT, 'inference')
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

/** Relative imports (static, dynamic, tsImport) of one file, as paths relative to `root` ('../' for those outside it). */
async function importsOf (file: string, root: string): Promise<string[]> {
  const text = await readFile(file, 'utf8')
  const specifiers = [...text.matchAll(/(?:from|import\(|tsImport\()\s*'(\.{1,2}\/[^']+)'/g)].map((match) => match[1])
  return specifiers.map((specifier) => relative(root, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts'))
}

/** Every relative import of the files under one top-level folder, as paths from the repository's root. */
async function importsOfFolder (folder: string): Promise<string[]> {
  const imports = await Promise.all((await sourceFiles(join(ROOT, folder))).map(async (file) => await importsOf(file, ROOT)))
  return [...new Set(imports.flat())].sort()
}

const files = (await sourceFiles(INFERENCE)).map((file) => relative(INFERENCE, file))
const graph = new Map(await Promise.all(files.map(async (file) =>
  [file, (await importsOf(join(INFERENCE, file), INFERENCE)).filter((path) => !path.startsWith('..'))] as const)))

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

// The plain-TypeScript rooms take from each other only what is theirs: the records store takes the series rule, the
// disclaimer and the error classes from inference/. What two rooms need and neither owns (which process owns a file
// on a shared volume: the embedded database's lock, a Keras conversion's work folder) is in platform/, which imports
// none of the rooms.
t.test('records/ imports from inference/ only the series rule, the disclaimer and the error classes', async (t) => {
  t.same((await importsOfFolder('records')).filter((path) => path.startsWith('inference/')),
    ['inference/errors.ts', 'inference/recommend.ts', 'inference/series-conclusion.ts'])
})

t.test('platform/ imports nothing of the service\'s rooms', async (t) => {
  t.ok((await sourceFiles(join(ROOT, 'platform'))).length > 0)
  t.same((await importsOfFolder('platform')).filter((path) => !path.startsWith('platform/')), [])
})
