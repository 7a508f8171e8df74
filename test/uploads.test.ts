import { randomUUID } from 'node:crypto'
import { execFile } from 'node:child_process'
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import sharp from 'sharp'
import { buildApp } from '../app.js'
import { ConfigError } from '../plugins/app/config.js'
import { UploadStore } from '../plugins/app/uploads.js'
import { build, ctKidneyImage, fileUpload, SHARED, UUID } from './helper.js'
import { mountTmpfs } from './helpers/tmpfs.js'

t.test('an accepted upload is stored as <uuid>.<detected type>, mode 0600, named by the response id', async (t) => {
  const app = await build(t)
  const png = await sharp(await ctKidneyImage('test/normal')).png().toBuffer()
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(png, '../../etc/evil name.jpg', 'image/jpeg') })
  t.equal(res.statusCode, 200)
  const { id } = res.json()
  t.match(id, UUID)
  t.same(await readdir(app.config.uploadDir), [`${id}.png`], 'named by id and detected type, never the client name')
  t.equal((await stat(join(app.config.uploadDir, `${id}.png`))).mode & 0o777, 0o600)
  t.equal((await stat(app.config.uploadDir)).mode & 0o777, 0o700)
})

t.test('UPLOAD_RETENTION=none keeps nothing on disk but still answers with an id', async (t) => {
  const app = await build(t, { config: { uploadMaxAgeMs: 0 } })
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })
  t.equal(res.statusCode, 200)
  t.match(res.json().id, UUID)
  t.same(await readdir(app.config.uploadDir), [])
})

t.test('the retention sweep removes expired files, then the oldest beyond the count, and nothing else', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-retention-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const writer = new UploadStore(dir, { maxAgeMs: 60_000, maxFiles: 10 })
  await writer.init()
  const now = Date.now()
  const ids: string[] = []
  for (const ageMs of [120_000, 30_000, 20_000, 10_000]) {
    const id = randomUUID()
    await writer.save(Buffer.from('x'), 'jpeg', id)
    const when = new Date(now - ageMs)
    await utimes(join(dir, `${id}.jpg`), when, when)
    ids.push(id)
  }
  await writeFile(join(dir, 'README.txt'), 'not ours')
  // A restarted service indexes what an earlier run left, by modification time.
  const store = new UploadStore(dir, { maxAgeMs: 60_000, maxFiles: 2 })
  await store.init()
  t.equal(store.count, 4, 'the four stored uploads are indexed, the foreign file is not')
  const removed = await store.sweep(now)
  t.equal(removed, 2, 'one expired, one beyond the count')
  t.same((await readdir(dir)).sort(), ['README.txt', `${ids[2]}.jpg`, `${ids[3]}.jpg`].sort())
  t.equal(await store.sweep(now), 0, 'a second sweep finds nothing to do')
})

t.test('saving beyond the maximum count removes the oldest upload at once, without waiting for a sweep', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-retention-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const store = new UploadStore(dir, { maxAgeMs: 60_000, maxFiles: 3 })
  await store.init()
  const ids: string[] = []
  for (let i = 0; i < 5; i++) {
    ids.push(randomUUID())
    await store.save(Buffer.from([i]), 'png', ids[i])
  }
  t.same((await readdir(dir)).sort(), ids.slice(2).map((id) => `${id}.png`).sort(), 'the three newest remain')
  t.equal(store.count, 3)
})

t.test('UPLOAD_DIR must be a real directory of the service with mode 0700, else start-up fails naming it', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'kidney-upload-dir-'))
  t.teardown(async () => await rm(base, { recursive: true, force: true }))
  const refusal = async (uploadDir: string): Promise<string> => {
    const app = await buildApp({ logger: false, config: { uploadDir, uploadMaxAgeMs: 60_000 } }).catch((error: unknown) => {
      if (error instanceof ConfigError) return error
      throw error
    })
    if (app instanceof ConfigError) return app.message
    await app.close()
    return 'started'
  }

  const created = join(base, 'new/uploads')
  t.equal(await refusal(created), 'started', 'a missing directory is created')
  t.equal((await stat(created)).mode & 0o777, 0o700, 'with mode 0700')

  const open = join(base, 'open')
  await mkdir(open)
  await chmod(open, 0o777)
  t.equal(await refusal(open), `UPLOAD_DIR ${open} has mode 0777; it must be 0700 (chmod 700 ${open})`)

  const link = join(base, 'link')
  await symlink(created, link)
  t.equal(await refusal(link), `UPLOAD_DIR ${link} is a symbolic link: point UPLOAD_DIR at the real directory`)

  const file = join(base, 'file')
  await writeFile(file, 'x')
  t.match(await refusal(file), new RegExp(`^UPLOAD_DIR ${file} (cannot be created|is not a directory)`))

  // Root (CI) hands a directory to another user; anyone else finds one: the file system's root is root's.
  const foreign = process.getuid?.() === 0 ? join(base, 'foreign') : '/'
  if (foreign !== '/') {
    await mkdir(foreign, { mode: 0o700 })
    await chown(foreign, 65534, 65534)
  }
  t.match(await refusal(foreign), new RegExp(`^UPLOAD_DIR ${foreign} is owned by uid \\d+, not by the service's uid ${process.getuid?.()}`))

  // As the service is started: one line on stderr, exit code 1, before the model is loaded.
  const serve = fileURLToPath(new URL('../bin/serve', import.meta.url))
  const result = await new Promise<{ code: number | null, stderr: string }>((resolve) => {
    execFile(serve, [], { env: { ...process.env, UPLOAD_DIR: link, PORT: '0' }, timeout: 120_000 }, (error, _stdout, stderr) =>
      resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? null, stderr }))
  })
  t.equal(result.code, 1, 'bin/serve exits 1')
  t.equal(result.stderr.trim(), `UPLOAD_DIR ${link} is a symbolic link: point UPLOAD_DIR at the real directory`)
})

t.test('a full, read-only or removed UPLOAD_DIR gets 503 UPLOADS_UNAVAILABLE, keeps no partial file, and recovers', async (t) => {
  // A real full file system: a 1 MiB tmpfs (CI runs as root) holds one 530 kB DICOM slice and part of a second.
  const disk = await mountTmpfs(t, '1m')
  const dir = disk.dir
  const app = await build(t, { config: { uploadDir: dir } })
  const slice = await readFile(join(SHARED, 'data/dicom/ct1-unc-explicit-little-endian.dcm'))
  const predict = async (): Promise<{ statusCode: number, retryAfter?: string, body: any }> => {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice, 'slice.dcm', 'application/dicom') })
    return { statusCode: res.statusCode, retryAfter: res.headers['retry-after'] as string | undefined, body: res.json() }
  }
  const refused = (reason: string) => ({
    statusCode: 503,
    retryAfter: '30',
    body: { code: 'UPLOADS_UNAVAILABLE', message: `The upload cannot be kept right now (${reason}); nothing was answered, retry after 30 s.` }
  })

  const first = await predict()
  t.equal(first.statusCode, 200)
  t.match(await predict(), refused('the upload directory\'s file system is full'), 'the second slice does not fit: typed, not 500')
  t.same(await readdir(dir), [`${first.body.id as string}.dcm`], 'the cut-off write leaves no partial file behind')
  t.equal((await stat(join(dir, `${first.body.id as string}.dcm`))).size, slice.length)

  await disk.remount('ro')
  await rm(join(dir, `${first.body.id as string}.dcm`)).catch(() => undefined)
  t.match(await predict(), refused('the upload directory\'s file system is read-only'))
  await disk.remount('rw')
  await rm(join(dir, `${first.body.id as string}.dcm`))
  const again = await predict()
  t.equal(again.statusCode, 200, 'space freed: uploads are kept again, no restart needed')
  t.same(await readdir(dir), [`${again.body.id as string}.dcm`])

  await disk.unmount()
  await rm(dir, { recursive: true })
  t.match(await predict(), refused('the upload directory is gone'), 'a directory removed at run time')
})
