/**
 * npm run cluster:test [-- --duration 60 --connections 8]: three service processes on one PostgreSQL behind
 * HAProxy (deploy/haproxy/haproxy.cfg), a mixed load (slices, originals, DICOM, batches, reads of earlier
 * answers), one replica killed (SIGKILL) a third of the way in and one stopped (SIGTERM, as in a rolling update)
 * at two thirds, each started again 5 s later. Checks that every request got 200 or a typed 503 (beyond the
 * requests in flight on the killed replica), that every answer's record reads back the same through every
 * replica, and that no answered record is missing. Reports throughput per replica and CPU per image.
 * On a 2-core machine the replicas, PostgreSQL, HAProxy and the load share two cores: the figures show
 * correctness and the cost of an image, not the speed of a cluster.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Command } from 'commander'
import pg from 'pg'
import { freePort, metric, REPO, startService, type RunningServer } from '../../bench/processes.js'
import { SHARED } from '../../test/helper.js'
import { startPostgres } from '../../test/helpers/postgres.js'
import { loadCorpus, runLoad, sameAnswer, type Outcome } from './load.js'

const opts = new Command()
  .option('--duration <s>', 'seconds of load', '60')
  .option('--connections <n>', 'concurrent clients', '8')
  .option('--out <dir>', 'where the result JSON is written', join(REPO, 'bench/results'))
  .parse().opts<{ duration: string, connections: string, out: string }>()
const durationMs = Number(opts.duration) * 1000
const TYPED_503 = new Set(['QUEUE_FULL', 'OVERLOADED', 'SHUTTING_DOWN', 'MODEL_NOT_READY', 'RECORDS_UNAVAILABLE'])

/** HAProxy and PostgreSQL from Debian, installed when missing (as root); without them the test cannot run. */
function preflight (): void {
  for (const [script, args] of [['scripts/apt-install.sh', ['haproxy']], ['scripts/install-postgres.sh', []]] as const) {
    const result = spawnSync('bash', [join(REPO, script), ...args], { stdio: 'inherit' })
    if (result.status !== 0) {
      console.log(`cluster:test cannot run here: ${script} ${args.join(' ')} failed (installing needs root)`)
      process.exit(2)
    }
  }
}

let failed = 0
function check (ok: boolean, what: string, detail = ''): void {
  if (!ok) failed++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail !== '' ? `: ${detail}` : ''}`)
}

/** One replica slot: a fixed port (HAProxy's server line), the processes that ran on it, their last readings. */
interface Replica {
  name: string
  port: number
  running?: RunningServer
  /**
   * CPU seconds and images classified by the processes on this slot that have ended, and the running one's last
   * reading; CPU counted from the moment each became ready, its start-up (compiling, loading the model) apart.
   */
  done: { cpu: number, images: number }
  last: { cpu: number, images: number }
  startupCpu: number
  readyCpu: number
  maxRssBytes: number
}

async function sampleReplica (replica: Replica): Promise<void> {
  const server = replica.running
  if (server === undefined) return
  try {
    const scrape = await (await fetch(`${server.url}/metrics`)).text()
    replica.last = { cpu: await server.cpuSeconds() - replica.readyCpu, images: metric(scrape, 'kidney_batch_size_sum') }
    const rss = await server.rssBytes()
    if (Number.isFinite(rss)) replica.maxRssBytes = Math.max(replica.maxRssBytes, rss)
  } catch {} // stopping or stopped: the last reading stands
}

async function haproxyStats (socket: string): Promise<Map<string, Record<string, string>>> {
  const text = await new Promise<string>((resolve, reject) => {
    let out = ''
    const conn = createConnection(socket, () => conn.write('show stat\n'))
    conn.on('data', (chunk) => { out += chunk.toString() })
    conn.on('end', () => resolve(out))
    conn.on('error', reject)
  })
  const [header, ...rows] = text.trim().split('\n')
  const columns = header.replace(/^# /, '').split(',')
  return new Map(rows.map((row) => {
    const values = Object.fromEntries(row.split(',').map((value, i) => [columns[i], value]))
    return [`${values.pxname}/${values.svname}`, values]
  }))
}

async function main (): Promise<void> {
  preflight()
  const stamp = new Date().toISOString().slice(0, 16).replace(':', '') + 'Z'
  const work = await mkdtemp(join(tmpdir(), 'kidney-cluster-'))
  const postgres = await startPostgres({ durable: true })
  const replicas: Replica[] = await Promise.all([1, 2, 3].map(async (i) => ({
    name: `r${i}`, port: await freePort(), done: { cpu: 0, images: 0 }, last: { cpu: 0, images: 0 }, startupCpu: 0, readyCpu: 0, maxRssBytes: 0
  })))
  let haproxy: ReturnType<typeof spawn> | undefined
  try {
    const databaseUrl = await postgres.createDatabase('kidney_cluster')
    const env = { DATABASE_URL: databaseUrl, UPLOAD_DIR: join(work, 'uploads'), UPLOAD_RETENTION: 'none' }
    const start = async (replica: Replica, round: number): Promise<void> => {
      replica.running = await startService(env, join(work, `${replica.name}-${round}.log`), replica.name, replica.port)
      replica.readyCpu = await replica.running.cpuSeconds()
      replica.startupCpu += replica.readyCpu
      replica.last = { cpu: 0, images: 0 }
    }
    const retire = (replica: Replica): void => {
      replica.done = { cpu: replica.done.cpu + replica.last.cpu, images: replica.done.images + replica.last.images }
      replica.last = { cpu: 0, images: 0 }
      replica.running = undefined
    }
    // started together: the migrations must run once, under their advisory lock
    await Promise.all(replicas.map(async (replica) => await start(replica, 0)))

    const lbPort = await freePort()
    const statsSocket = join(work, 'haproxy.sock')
    haproxy = spawn('haproxy', ['-db', '-f', join(REPO, 'deploy/haproxy/haproxy.cfg')], {
      env: { ...process.env, KIDNEY_LB_BIND: `127.0.0.1:${lbPort}`, KIDNEY_LB_STATS: statsSocket,
        ...Object.fromEntries(replicas.map((r, i) => [`KIDNEY_REPLICA_${i + 1}`, `127.0.0.1:${r.port}`])) },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const lbLog: string[] = []
    haproxy.stdout?.on('data', (chunk: Buffer) => lbLog.push(chunk.toString()))
    haproxy.stderr?.on('data', (chunk: Buffer) => lbLog.push(chunk.toString()))
    const lb = `http://127.0.0.1:${lbPort}`
    for (let i = 0; i < 100 && await fetch(`${lb}/health/ready`).then((r) => r.status, () => 0) !== 200; i++) await sleep(100)

    const corpus = await loadCorpus(SHARED)
    const startedAt = Date.now()
    const sampler = setInterval(() => { for (const replica of replicas) void sampleReplica(replica) }, 1000)
    const events: Array<{ at: number, what: string }> = []
    // r2 crashes at a third of the run, r3 is stopped as in a rolling update at two thirds; each comes back 5 s later
    const outage = async (replica: Replica, atMs: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> => {
      await sleep(atMs)
      await sampleReplica(replica)
      events.push({ at: Date.now(), what: `${signal} ${replica.name}` })
      process.kill(replica.running?.pid as number, signal)
      await replica.running?.stop()
      retire(replica)
      events.push({ at: Date.now(), what: `${replica.name} exited` })
      await sleep(5000)
      await start(replica, 1)
      events.push({ at: Date.now(), what: `${replica.name} ready again` })
    }
    const chaos = Promise.all([outage(replicas[1], durationMs / 3, 'SIGKILL'), outage(replicas[2], 2 * durationMs / 3, 'SIGTERM')])
    const outcomes = await runLoad(lb, corpus, Number(opts.connections), startedAt + durationMs)
    await chaos
    const elapsedS = (Date.now() - startedAt) / 1000
    clearInterval(sampler)
    for (const replica of replicas) await sampleReplica(replica)
    const stats = await haproxyStats(statsSocket)
    events.sort((a, b) => a.at - b.at)
    for (const event of events) console.log(`     ${((event.at - startedAt) / 1000).toFixed(1)} s: ${event.what}`)

    // 1. every request: 200 or a typed 503, except those in flight on the killed replica when it died
    const killAt = events.find((e) => e.what.startsWith('SIGKILL'))?.at ?? Infinity
    const inFlightAtKill = (o: Outcome): boolean => o.startedAt <= killAt && o.endedAt >= killAt
    const byStatus = new Map<string, number>()
    for (const o of outcomes) {
      const key = `${o.status}${o.code !== undefined ? ` ${o.code}` : ''}`
      byStatus.set(key, (byStatus.get(key) ?? 0) + 1)
    }
    console.log(`     ${outcomes.length} requests: ${[...byStatus].map(([k, n]) => `${n} x ${k}`).join(', ')}`)
    const unexpected = outcomes.filter((o) => o.status !== 200 && !(o.status === 503 && TYPED_503.has(o.code ?? '')))
    const lostInFlight = unexpected.filter(inFlightAtKill)
    const otherFailures = unexpected.filter((o) => !inFlightAtKill(o))
    const describe = (list: Outcome[]): string => list.slice(0, 8).map((o) =>
      `${o.kind} ${o.status} ${o.code ?? o.error ?? ''} (${((o.startedAt - startedAt) / 1000).toFixed(1)}-${((o.endedAt - startedAt) / 1000).toFixed(1)} s)`).join('; ')
    check(otherFailures.length === 0, 'every request answered 200 or a typed 503, but those in flight on the killed replica', describe(otherFailures))
    console.log(`     in flight on ${replicas[1].name} when it was killed and not answered: ${lostInFlight.length} (${describe(lostInFlight) || 'none'})`)
    check(outcomes.filter((o) => o.status === 0).every(inFlightAtKill), 'no connection error seen by a client, but those in flight at the kill')
    const reads = outcomes.filter((o) => o.kind === 'read' && o.status === 200)
    check(reads.every((o) => o.readBack === true), 'reads through the balancer return the answer as it was given', `${reads.length} reads`)

    // 2. every answer's record, through every replica; 3. nothing answered is missing from the database
    const answers = outcomes.flatMap((o) => o.answers)
    for (const replica of replicas) {
      let same = 0
      for (const answer of answers) {
        const res = await fetch(`http://127.0.0.1:${replica.port}/predictions/${answer.id}`)
        if (res.status === 200 && sameAnswer(answer, await res.json() as typeof answer)) same++
      }
      check(same === answers.length, `all ${answers.length} answered records read back the same through ${replica.name}`, `${same}`)
    }
    const client = new pg.Client({ connectionString: databaseUrl })
    await client.connect()
    const rows = await client.query<{ id: string }>('SELECT id FROM predictions')
    const migrations = await client.query('SELECT count(*)::int AS n FROM schema_migrations').catch(() => ({ rows: [{ n: -1 }] }))
    await client.end()
    const stored = new Set(rows.rows.map((row) => row.id))
    check(answers.every((answer) => stored.has(answer.id)), 'no answered prediction is missing from PostgreSQL', `${rows.rowCount} records for ${answers.length} answers`)
    console.log(`     records without a delivered answer (a replica killed after recording, before answering): ${stored.size - answers.length}`)

    // capacity figures
    const totals = { cpu: 0, images: 0 }
    const perReplica = replicas.map((replica) => {
      const cpu = replica.done.cpu + replica.last.cpu
      const images = replica.done.images + replica.last.images
      totals.cpu += cpu
      totals.images += images
      const server = stats.get(`replicas/${replica.name}`) ?? {}
      return { name: replica.name, images, imagesPerSecond: images / elapsedS, cpuSeconds: cpu, startupCpuSeconds: replica.startupCpu, cpuMsPerImage: 1000 * cpu / images,
        maxRssMiB: replica.maxRssBytes / 2 ** 20, requests: Number(server.stot), retries: Number(server.wretr), redispatches: Number(server.wredis) }
    })
    for (const r of perReplica) {
      console.log(`     ${r.name}: ${r.requests} requests, ${r.images} images (${r.imagesPerSecond.toFixed(1)}/s), ` +
        `${r.cpuMsPerImage.toFixed(1)} ms CPU per image (start-ups apart: ${r.startupCpuSeconds.toFixed(1)} s), max RSS ${r.maxRssMiB.toFixed(0)} MiB, retried ${r.retries}, redispatched ${r.redispatches}`)
    }
    const imagesPerCoreSecond = totals.images / totals.cpu
    console.log(`     all: ${totals.images} images in ${elapsedS.toFixed(0)} s = ${(totals.images / elapsedS).toFixed(1)} images/s; ` +
      `${(1000 * totals.cpu / totals.images).toFixed(2)} ms of replica CPU per image = ${imagesPerCoreSecond.toFixed(0)} images/s per core`)
    console.log(`     schema_migrations rows: ${migrations.rows[0].n}`)
    await mkdir(opts.out, { recursive: true })
    await writeFile(join(opts.out, `cluster-${stamp}.json`), JSON.stringify({
      command: `npm run cluster:test -- --duration ${opts.duration} --connections ${opts.connections}`,
      elapsedS, events: events.map((e) => ({ atS: (e.at - startedAt) / 1000, what: e.what })),
      statuses: Object.fromEntries(byStatus), lostInFlight: lostInFlight.length, answers: answers.length, records: stored.size,
      perReplica, imagesPerSecond: totals.images / elapsedS, cpuMsPerImage: 1000 * totals.cpu / totals.images, imagesPerCoreSecond
    }, null, 2) + '\n')
    if (failed > 0) await writeFile(join(work, 'haproxy.log'), lbLog.join(''))
  } finally {
    haproxy?.kill('SIGTERM')
    await Promise.all(replicas.map(async (replica) => await replica.running?.stop()))
    await postgres.destroy()
    if (failed === 0) await rm(work, { recursive: true, force: true })
    else console.log(`     logs kept in ${work}`)
  }
  console.log(`\ncluster:test: ${failed === 0 ? 'passed' : `${failed} check(s) failed`}`)
  process.exitCode = failed === 0 ? 0 : 1
}

await main()
