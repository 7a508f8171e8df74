import { randomUUID } from 'node:crypto'
import { mkdir, readdir, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fp from 'fastify-plugin'
import { FILE_EXTENSIONS, type ImageFormat } from '../../inference/decode.js'

const STORED_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[a-z]+$/

export interface RetentionPolicy {
  /** 0 keeps nothing on disk. */
  maxAgeMs: number
  maxFiles: number
}

/**
 * Accepted uploads, kept for audit like the old app did, but safely: a random UUID name with the extension of
 * the detected format (never the client's name), mode 0600 in a 0700 directory outside any served path, and
 * a retention sweep that only ever touches files named the way this store names them.
 */
export class UploadStore {
  constructor (readonly dir: string, readonly policy: RetentionPolicy) {}

  get keepsFiles (): boolean {
    return this.policy.maxAgeMs > 0
  }

  async init (): Promise<void> {
    if (this.keepsFiles) await mkdir(this.dir, { recursive: true, mode: 0o700 })
  }

  /** Stores an upload that passed decoding and returns its id (also returned when nothing is kept). */
  async save (bytes: Buffer, format: ImageFormat): Promise<string> {
    const id = randomUUID()
    if (this.keepsFiles) {
      await writeFile(join(this.dir, `${id}.${FILE_EXTENSIONS[format]}`), bytes, { mode: 0o600, flag: 'wx' })
    }
    return id
  }

  /** Deletes uploads older than the maximum age, then the oldest ones beyond the maximum count. */
  async sweep (now = Date.now()): Promise<number> {
    if (!this.keepsFiles) return 0
    const names = (await readdir(this.dir)).filter((name) => STORED_NAME.test(name))
    const files = await Promise.all(names.map(async (name) => {
      const path = join(this.dir, name)
      return { path, mtimeMs: (await stat(path).catch(() => undefined))?.mtimeMs }
    }))
    const present = files.filter((f): f is { path: string, mtimeMs: number } => f.mtimeMs !== undefined)
      .sort((a, b) => b.mtimeMs - a.mtimeMs)
    const expired = present.filter((f, index) => now - f.mtimeMs > this.policy.maxAgeMs || index >= this.policy.maxFiles)
    await Promise.all(expired.map(async (f) => await unlink(f.path).catch(() => undefined)))
    return expired.length
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    uploads: UploadStore
  }
}

export default fp(async (app) => {
  const store = new UploadStore(app.config.uploadDir, {
    maxAgeMs: app.config.uploadMaxAgeMs,
    maxFiles: app.config.uploadMaxFiles
  })
  await store.init()
  app.decorate('uploads', store)
  if (!store.keepsFiles) return

  const everyMs = Math.max(1_000, Math.min(60_000, store.policy.maxAgeMs / 4))
  const sweepAndLog = (): void => {
    store.sweep().then((removed) => {
      if (removed > 0) app.log.info({ removed }, 'upload retention sweep')
    }, (err: unknown) => app.log.error({ err }, 'upload retention sweep failed'))
  }
  const timer = setInterval(sweepAndLog, everyMs).unref()
  app.addHook('onReady', async () => sweepAndLog())
  app.addHook('onClose', async () => clearInterval(timer))
}, { name: 'uploads', dependencies: ['config'] })
