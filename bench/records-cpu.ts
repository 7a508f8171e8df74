// What a prediction record costs in CPU, end to end: the service with records off, on PGlite and on a PostgreSQL
// server (a throwaway cluster with the server's durable defaults), each driven with the same number of /predict
// uploads of one bench image at 8 connections, in interleaved rounds (each round in another order). Per request: the service's CPU (all threads,
// from /proc), the PostgreSQL server's (postmaster and children), the service's main thread and its busiest other
// threads (on PGlite the database thread is the newest one), and from /metrics the records per insert and images
// per model batch. `--base <checkout>` adds the variants named with `@base`, started from another checkout of the
// service (with its own node_modules), to compare a change with it in the same rounds. Run it pinned to one core so
// that the variants compete for nothing else:
//   taskset -c 1 npx tsx bench/records-cpu.ts [--requests 600] [--rounds 3] [--image 384px|originals]
//     [--variants off,pglite,postgres] [--base <dir> --variants off,pglite,pglite@base,postgres,postgres@base]
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { fileUpload } from '../test/helper.js'
import { startPostgres } from '../test/helpers/postgres.js'
import { benchImageSets } from './images.js'
import { postgresCpuMs, processCpuMs, threadCpuMs } from './proc-cpu.js'
import { metric, startService, type RunningServer } from './processes.js'
import { recordsOrder } from './records.js'
import { median } from './report.js'

const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '600' },
    rounds: { type: 'string', default: '3' },
    image: { type: 'string', default: '384px' },
    variants: { type: 'string', default: 'off,pglite,postgres' },
    base: { type: 'string' }
  }
})

interface Counters { records: number, inserts: number, images: number, batches: number }

async function counters (url: string): Promise<Counters> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return {
    records: metric(text, 'kidney_records_write_rows_sum{kind="prediction"}'),
    inserts: metric(text, 'kidney_records_write_rows_count{kind="prediction"}'),
    images: metric(text, 'kidney_batch_size_sum'),
    batches: metric(text, 'kidney_batch_size_count')
  }
}

/** `amount` uploads of `image` at 8 connections; fails on any answer but 200. */
async function drive (url: string, image: Buffer, amount: number): Promise<number> {
  const { payload, headers } = fileUpload(image, 'slice.jpg')
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon({ url, connections: 8, amount, requests: [{ method: 'POST', path: '/predict', headers, body: payload }], timeout: 60 },
      (error, r) => error != null ? reject(error) : resolve(r))
  })
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) throw new Error(`${result.non2xx} non-2xx answers, ${result.errors} errors`)
  return result.requests.total
}

const sets = await benchImageSets()
const image = (sets.find((s) => s.name === opts.image) ?? sets[0]).bytes[0]
const variants = opts.variants.split(',')
const requests = Number(opts.requests)
const work = await mkdtemp(join(tmpdir(), 'records-cpu-'))
const postgres = await startPostgres({ durable: true })
const servers = new Map<string, RunningServer>()
try {
  const env = async (variant: string, tag: string): Promise<NodeJS.ProcessEnv> => {
    const uploads = join(work, `${tag}-uploads`)
    if (variant === 'off') return { UPLOAD_DIR: uploads, RECORDS_STORE: 'off' }
    if (variant === 'pglite') return { UPLOAD_DIR: uploads, DATA_DIR: join(work, `${tag}-data`) }
    return { UPLOAD_DIR: uploads, DATABASE_URL: await postgres.createDatabase(`records_${tag}`) }
  }
  for (const variant of variants) {
    const [kind, at] = variant.split('@')
    if (at !== undefined && opts.base === undefined) throw new Error(`${variant}: give the other checkout with --base`)
    const tag = variant.replace('@', '_')
    const server = await startService(await env(kind, tag), join(work, `${tag}.log`), variant, undefined, at === undefined ? undefined : opts.base)
    servers.set(variant, server)
    await drive(server.url, image, 100) // warm-up
  }
  const results = new Map<string, Array<{ service: number, server: number }>>()
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const variant of recordsOrder(variants, round)) {
      const server = servers.get(variant) as RunningServer
      const before = { counters: await counters(server.url), service: await processCpuMs(server.pid), threads: await threadCpuMs(server.pid), server: variant.startsWith('postgres') ? await postgresCpuMs(postgres.port) : 0 }
      const n = await drive(server.url, image, requests)
      const service = await processCpuMs(server.pid)
      const names = new Map<number, string>()
      const threads = await threadCpuMs(server.pid, names)
      const serverMs = variant.startsWith('postgres') ? await postgresCpuMs(postgres.port) : 0
      const after = await counters(server.url)
      const row = { service: (service - before.service) / n, server: (serverMs - before.server) / n }
      results.set(variant, [...results.get(variant) ?? [], row])
      const perThread = [...threads].map(([tid, ms]) => ({ tid, name: names.get(tid), ms: (ms - (before.threads.get(tid) ?? 0)) / n }))
      const main = perThread.find(({ tid }) => tid === server.pid)?.ms ?? NaN
      const newest = perThread.filter(({ name }) => name === 'node').sort((a, b) => b.tid - a.tid)[0]
      const busiest = perThread.filter(({ tid }) => tid !== server.pid).sort((a, b) => b.ms - a.ms).slice(0, 4)
      const perInsert = (after.records - before.counters.records) / (after.inserts - before.counters.inserts)
      const perBatch = (after.images - before.counters.images) / (after.batches - before.counters.batches)
      console.log(`round ${round} ${variant}: service ${row.service.toFixed(3)} ms/request (main thread ${main.toFixed(2)}` +
        `${variant.startsWith('pglite') ? `, database thread ${newest?.ms.toFixed(3)}` : ''}), PostgreSQL server ${row.server.toFixed(3)}; ` +
        `${perInsert.toFixed(2)} records/insert, ${perBatch.toFixed(2)} images/batch; busiest threads ${busiest.map(({ tid, name, ms }) => `${name}/${tid} ${ms.toFixed(2)}`).join(', ')}`)
    }
  }
  for (const [variant, rows] of results) {
    console.log(`${variant}: median of ${rows.length} rounds: service ${median(rows.map((r) => r.service)).toFixed(3)} + PostgreSQL server ` +
      `${median(rows.map((r) => r.server)).toFixed(3)} = ${median(rows.map((r) => r.service + r.server)).toFixed(3)} ms CPU/request`)
  }
} finally {
  for (const server of servers.values()) await server.stop()
  await postgres.destroy()
  await rm(work, { recursive: true, force: true })
}
