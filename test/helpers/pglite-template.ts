import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { cp, mkdir, mkdtemp, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openPGlite } from '../../records/pglite-driver.js'

const REPO = new URL('../../', import.meta.url).pathname

/** PGlite's version and the worker that opens it: a template made by either of another kind is not reused. */
function templateKey (): string {
  const version = JSON.parse(readFileSync(join(REPO, 'node_modules/@electric-sql/pglite/package.json'), 'utf8')).version as string
  const worker = createHash('sha256').update(readFileSync(join(REPO, 'records/pglite-worker.js'))).digest('hex').slice(0, 12)
  return `${version}-${worker}`
}

let template: Promise<string> | undefined

/** An empty embedded database made by openPGlite itself, once per machine; test processes racing to make it keep the first. */
async function emptyTemplate (): Promise<string> {
  const final = join(tmpdir(), `kidney-pglite-template-${templateKey()}`)
  if (existsSync(join(final, 'records', 'PG_VERSION'))) return final
  const making = await mkdtemp(join(tmpdir(), 'kidney-pglite-template-making-'))
  try {
    await (await openPGlite(making)).close()
    await rename(making, final)
  } catch (error) {
    await rm(making, { recursive: true, force: true })
    if (!existsSync(join(final, 'records', 'PG_VERSION'))) throw error
  }
  return final
}

/**
 * `dataDir` holding a new, empty embedded database, as `npm start` creates one on its first start (no migrations
 * applied). Creating one costs about 6 s of CPU (initdb in WebAssembly) and copying the template a few
 * milliseconds; test/records-pglite.test.ts and the service's own first start still create theirs from nothing.
 */
export async function emptyPGliteDataDir (dataDir: string): Promise<string> {
  template ??= emptyTemplate()
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  await cp(join(await template, 'records'), join(dataDir, 'records'), { recursive: true })
  return dataDir
}
