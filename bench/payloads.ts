import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Command } from 'commander'
import { ctKidneyImage } from '../test/helper.js'
import { dicomFileCases } from '../test/hostile/dicom-cases.js'
import { BOUNDARY, encodeMultipart } from '../test/hostile/request-cases.js'
import { loadConfig } from '../plugins/app/config.js'
import { REPO, probeLive, startService, type RunningServer } from './processes.js'
import { resultsStamp } from './report.js'

const program = new Command('bench:payloads')
  .description('Each hostile DICOM payload family against the service as users start it: status, seconds, RSS before/after, /health/live during it')
  .option('--probe-every <ms>', 'pause between /health/live probes while a payload is in flight', '25')
  .option('--out <dir>', 'where the result is written', join(REPO, 'bench/results'))
  .parse()
const opts = program.opts<{ probeEvery: string, out: string }>()
const MiB = 1024 * 1024

interface Row {
  family: string
  payload: string
  uploadBytes: number
  status: string
  seconds: number
  rssBeforeMiB: number
  rssAfterMiB: number
  rssPeakMiB: number
  liveProbes: number
  liveFailures: number
  liveWorstMs: number
}

/** /health/live probed one after the other (each on a new connection) until `done()`; RSS sampled alongside. */
async function probeWhile (server: RunningServer, done: () => boolean): Promise<{ probes: number, failures: number, worstMs: number, peakRss: number }> {
  let probes = 0
  let failures = 0
  let worstMs = 0
  let peakRss = 0
  while (!done()) {
    const { outcome, ms } = await probeLive(server.url)
    worstMs = Math.max(worstMs, ms)
    probes++
    if (outcome !== '200') failures++
    peakRss = Math.max(peakRss, await server.rssBytes())
    await sleep(Number(opts.probeEvery))
  }
  return { probes, failures, worstMs, peakRss }
}

function form (field: string, files: Array<{ name: string, data: Buffer }>): FormData {
  const body = new FormData()
  for (const file of files) body.append(field, new Blob([new Uint8Array(file.data)]), file.name)
  return body
}

/** One measured request (or several at once), with liveness probed while it runs. */
async function measure (server: RunningServer, family: string, payload: string, uploadBytes: number, send: () => Promise<string>): Promise<Row> {
  const rssBefore = await server.rssBytes()
  let finished = false
  const probing = probeWhile(server, () => finished)
  const started = performance.now()
  const status = await send().finally(() => { finished = true })
  const seconds = (performance.now() - started) / 1000
  const { probes, failures, worstMs, peakRss } = await probing
  const rssAfter = await server.rssBytes()
  const row = {
    family,
    payload,
    uploadBytes,
    status,
    seconds: Number(seconds.toFixed(2)),
    rssBeforeMiB: Number((rssBefore / MiB).toFixed(1)),
    rssAfterMiB: Number((rssAfter / MiB).toFixed(1)),
    rssPeakMiB: Number((Math.max(peakRss, rssAfter) / MiB).toFixed(1)),
    liveProbes: probes,
    liveFailures: failures,
    liveWorstMs: Number(worstMs.toFixed(1))
  }
  process.stdout.write(`${row.status.padEnd(26)} ${String(row.seconds).padStart(6)} s  RSS ${row.rssBeforeMiB} -> ${row.rssAfterMiB} MiB ` +
    `(peak ${row.rssPeakMiB})  live ${probes - failures}/${probes}, worst ${row.liveWorstMs} ms  ${family} / ${payload}\n`)
  return row
}

/** Writes a whole HTTP request on its own connection; the answer's status and code. */
async function rawAnswer (port: number, request: Buffer): Promise<string> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request))
    let text = ''
    socket.on('data', (chunk) => { text += chunk.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => {
      const status = text.split(' ')[1]
      resolve(status === undefined ? 'no answer' : `${status} ${/"code":"(\w+)"/.exec(text)?.[1] ?? ''}`.trim())
    })
  })
}

async function answer (res: Response): Promise<string> {
  const body = await res.json().catch(() => ({})) as { code?: string }
  return res.status === 200 ? '200' : `${res.status} ${body.code ?? ''}`
}

const config = loadConfig()
const work = await mkdtemp(join(tmpdir(), 'kidney-payloads-'))
const server = await startService({ UPLOAD_DIR: join(work, 'uploads') }, join(work, 'service.log'))
const rows: Row[] = []
const startedAt = new Date()
try {
  const cases = await dicomFileCases(config.maxPixels)
  // Warm-up: the decoder threads start and compile their codecs, as after the first DICOM files in service.
  const control = cases.find((c) => c.name.startsWith('JPEG-LS slice as shared'))!
  for (let i = 0; i < 3; i++) await fetch(`${server.url}/predict`, { method: 'POST', body: form('file', [{ name: 'slice.dcm', data: control.data }]) })
  await sleep(1000)

  for (const hostile of cases) {
    rows.push(await measure(server, hostile.category, hostile.name, hostile.data.length, async () =>
      await answer(await fetch(`${server.url}/predict`, { method: 'POST', body: form('file', [{ name: 'slice.dcm', data: hostile.data }]) }))))
  }

  const bomb = cases.find((c) => c.name.includes('4094 MiB'))!
  rows.push(await measure(server, 'deflate-bomb', '/predict/batch with 32 copies of the 4 GiB bomb', 32 * bomb.data.length, async () => {
    const res = await fetch(`${server.url}/predict/batch`, { method: 'POST', body: form('files', Array.from({ length: 32 }, (_, i) => ({ name: `${i}.dcm`, data: bomb.data }))) })
    const body = await res.json() as { results?: Array<{ error?: { code: string } }> }
    const codes = [...new Set(body.results?.map((entry) => entry.error?.code ?? '200'))]
    return `${res.status} [${codes.join(',')}]`
  }))

  // The third family: 100 uploads of 19 MiB at once (a real slice padded to 19 MiB: it decodes), each
  // written whole on its own socket, so that the client costs next to nothing.
  const padded = Buffer.concat([await ctKidneyImage('test/stone'), Buffer.alloc(19 * MiB)])
  const body = encodeMultipart([{ name: 'file', filename: 'slice.jpg', contentType: 'image/jpeg', data: padded }])
  const raw = Buffer.concat([Buffer.from(`POST /predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n` +
    `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${body.length}\r\n\r\n`), body])
  const port = Number(new URL(server.url).port)
  rows.push(await measure(server, 'concurrent-uploads', '100 simultaneous 19 MiB uploads', 100 * raw.length, async () => {
    const answers = await Promise.all(Array.from({ length: 100 }, async () => await rawAnswer(port, raw)))
    const counts = answers.reduce<Record<string, number>>((all, status) => ({ ...all, [status]: (all[status] ?? 0) + 1 }), {})
    return Object.entries(counts).map(([status, count]) => `${count}x ${status}`).join(', ')
  }))
  await sleep(5000)
  const settled = (await server.rssBytes()) / MiB
  process.stdout.write(`RSS 5 s after the last request: ${settled.toFixed(1)} MiB\n`)

  const summary = {
    date: startedAt.toISOString(),
    command: `npm run bench:payloads -- ${process.argv.slice(2).join(' ')}`.trim(),
    // What the peak depends on, so that a deployment's memory limit can be checked against a run with its settings.
    config: { maxPixels: config.maxPixels, maxInflightBytes: config.maxInflightBytes, pressureMaxRssBytes: config.pressure.maxRssBytes, recordsStore: config.records.store, dicomDecoders: config.dicomDecoders },
    loadAverageAtEnd: loadavg().map((v) => Number(v.toFixed(2))),
    rssFiveSecondsAfterMiB: Number(settled.toFixed(1)),
    rows
  }
  await mkdir(opts.out, { recursive: true })
  const file = join(opts.out, `payloads-${resultsStamp(summary.date)}.json`)
  await writeFile(file, JSON.stringify(summary, null, 2) + '\n')
  process.stdout.write(`\n| family | payload | upload | answer | s | RSS before -> after (peak) MiB | /health/live answered, worst |\n|---|---|---:|---|---:|---|---|\n`)
  for (const row of rows) {
    process.stdout.write(`| ${row.family} | ${row.payload} | ${(row.uploadBytes / MiB).toFixed(1)} MiB | ${row.status} | ${row.seconds} | ` +
      `${row.rssBeforeMiB} -> ${row.rssAfterMiB} (${row.rssPeakMiB}) | ${row.liveProbes - row.liveFailures}/${row.liveProbes}, ${row.liveWorstMs} ms |\n`)
  }
  process.stdout.write(`\nWritten: ${file}\n`)
} finally {
  await server.stop()
  await rm(work, { recursive: true, force: true })
}
