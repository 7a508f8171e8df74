import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { FormatRegistry } from '@sinclair/typebox'
import { buildApp, type AppOptions } from '../app.js'
import { ConfigError, loadConfig } from '../plugins/app/config.js'
import { BOUNDARY, encodeMultipart } from './hostile/request-cases.js'
import type { FormPart } from './hostile/types.js'

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
// TypeBox's Value.Check knows no string formats until they are registered; responses use `uuid`.
FormatRegistry.Set('uuid', (value) => UUID.test(value))

type Teardown = { teardown: (fn: () => unknown) => void }

export const SHARED = new URL('../../shared/', import.meta.url).pathname
export const CT_KIDNEY = join(SHARED, 'data/ct-kidney')

/** Records off: the tests of records (test/records/) pass a store of their own, on PGlite and on PostgreSQL. */
/** What loadConfig says of `env`: 'accepted', or the refusal's message (a ConfigError's; anything else as it prints). */
export function configRefusal (env: Record<string, string>): string {
  try {
    loadConfig(env)
    return 'accepted'
  } catch (error) {
    return error instanceof ConfigError ? error.message : String(error)
  }
}

export const RECORDS_OFF = { ...loadConfig().records, store: 'off' } as const

/**
 * A fresh app on the default model, its own upload directory, ready for `app.inject`; closed on teardown. Nothing
 * is recorded unless `options.config.records` says so (opening an embedded database costs seconds per app).
 */
export async function build (t: Teardown, options: AppOptions = {}, { waitForModel = true } = {}): Promise<FastifyInstance> {
  const uploadDir = await mkdtemp(join(tmpdir(), 'kidney-uploads-'))
  const app = await buildApp({ logger: false, ...options, config: { uploadDir, records: RECORDS_OFF, ...options.config } })
  t.teardown(async () => {
    await app.close()
    await rm(uploadDir, { recursive: true, force: true })
  })
  await app.ready()
  if (waitForModel) await Promise.all([app.model.loaded, app.records.opened])
  return app
}

/** A multipart/form-data body with the given parts, for `app.inject` (encoded like the hostile corpus's forms). */
export function multipart (parts: FormPart[]): { payload: Buffer, headers: Record<string, string> } {
  return { payload: encodeMultipart(parts), headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } }
}

/** One uploaded file in the `file` field. */
export function fileUpload (data: Buffer, filename = 'slice.jpg', contentType = 'image/jpeg'): ReturnType<typeof multipart> {
  return multipart([{ name: 'file', filename, contentType, data }])
}

/** The first `count` files (sorted by name) of a ct-kidney folder, e.g. `test/stone` or `originals/normal`. */
export async function ctKidneyFiles (folder: string, count: number): Promise<string[]> {
  const dir = join(CT_KIDNEY, folder)
  return (await readdir(dir)).sort().slice(0, count).map((name) => join(dir, name))
}

/** Up to `count` files spread evenly over a folder sorted by name (every n-th), with their names. */
export async function spreadFiles (dir: string, count: number): Promise<Array<{ name: string, bytes: Buffer }>> {
  const names = (await readdir(dir)).sort().filter((_, i, all) => i % Math.max(1, Math.floor(all.length / count)) === 0).slice(0, count)
  return await Promise.all(names.map(async (name) => ({ name, bytes: await readFile(join(dir, name)) })))
}

export async function ctKidneyImage (folder: string, index = 0): Promise<Buffer> {
  const files = await ctKidneyFiles(folder, index + 1)
  return await readFile(files[index])
}
