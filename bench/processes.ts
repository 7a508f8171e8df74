import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { get } from 'node:http'
import { performance } from 'node:perf_hooks'
import { createWriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { processCpuMs } from './proc-cpu.js'

export const REPO = fileURLToPath(new URL('..', import.meta.url))

/** A server under test, started as its users start it, on a free loopback port. */
export interface RunningServer {
  /** 'baseline', 'service', or a named service variant (bench/records.ts). */
  name: string
  url: string
  pid: number
  /** Resident set size of the server process, from /proc. */
  rssBytes: () => Promise<number>
  /** CPU time the server process has used so far (all its threads, user + system), from /proc. */
  cpuSeconds: () => Promise<number>
  stop: () => Promise<void>
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')))
    })
  })
}

async function waitUntilReady (url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`server exited with code ${child.exitCode} before it was ready`)
    const ready = await fetch(`${url}/health/ready`).then((res) => res.ok, () => false)
    if (ready) return
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error(`server at ${url} not ready after ${timeoutMs} ms`)
}

async function start (name: string, command: string, args: string[], env: NodeJS.ProcessEnv, port: number, logPath: string): Promise<RunningServer> {
  const child = spawn(command, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const log = createWriteStream(logPath)
  child.stdout?.pipe(log)
  child.stderr?.pipe(log)
  const url = `http://127.0.0.1:${port}`
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  }
  try {
    await waitUntilReady(url, child, 180_000)
  } catch (error) {
    await stop()
    throw new Error(`${name}: ${(error as Error).message} (log: ${logPath})`)
  }
  const pid = child.pid as number
  return {
    name,
    url,
    pid,
    stop,
    rssBytes: async () => {
      const status = await readFile(`/proc/${pid}/status`, 'utf8')
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) * 1024
    },
    cpuSeconds: async () => await processCpuMs(pid) / 1000
  }
}

/** CPUs the services run on when the bench keeps them apart from everything else (`pinServicesTo`). */
let serviceCpus: number[] | undefined

/**
 * Pins the services started from now on to `cpus` (taskset), with as many onnxruntime threads, and this process
 * (its load generator, and the PostgreSQL server it starts) to the other CPUs: a database on a host of its own, as
 * far as one machine can show it.
 */
export function pinServicesTo (list: number[]): void {
  const others = cpus().map((_, cpu) => cpu).filter((cpu) => !list.includes(cpu))
  if (list.length === 0 || others.length === 0) throw new Error(`--service-cpus must name some but not all of CPUs 0-${cpus().length - 1}`)
  execFileSync('taskset', ['-a', '-p', '-c', others.join(','), String(process.pid)], { stdio: 'ignore' })
  serviceCpus = list
}

/**
 * This service as a user starts it (`bin/serve`, what `npm start` runs, configured by environment variables), on
 * `port` or a free one; `repo`: from another checkout, to compare a change with it. The per-client rate limit is
 * switched off: a load generator is one client sending far more than a person.
 */
export async function startService (env: NodeJS.ProcessEnv, logPath: string, name = 'service', port?: number, repo = REPO): Promise<RunningServer> {
  port ??= await freePort()
  const serve = join(repo, 'bin/serve')
  const base = { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '0' }
  if (serviceCpus === undefined) return await start(name, serve, [], { ...base, ...env }, port, logPath)
  return await start(name, 'taskset', ['-c', serviceCpus.join(','), serve],
    { ...base, ORT_INTRA_OP_THREADS: String(serviceCpus.length), ...env }, port, logPath)
}

/** The Flask + PyTorch baseline (bench/baseline/app.py) on Debian's python3. */
export async function startBaseline (options: { model: string, checkpoint?: string, threads: number, uploadDir: string }, logPath: string): Promise<RunningServer> {
  const port = await freePort()
  const args = ['bench/baseline/app.py', '--port', String(port), '--model', options.model, '--threads', String(options.threads),
    '--upload-dir', options.uploadDir, ...(options.checkpoint !== undefined ? ['--checkpoint', options.checkpoint] : [])]
  return await start('baseline', '/usr/bin/python3', args, { OMP_NUM_THREADS: String(options.threads) }, port, logPath)
}

/** One unlabelled sample from a Prometheus text exposition (NaN when absent). */
export function metric (text: string, name: string): number {
  return Number(text.split('\n').find((line) => line.startsWith(name + ' '))?.split(' ')[1] ?? NaN)
}

/**
 * One liveness probe as an orchestrator sends it: GET /health/live on a new connection (a kept-alive one can be
 * closed by the server just as it is reused, which would be the client's failure, not the service's). `outcome` is
 * the status code, or the error code when no answer came within `timeoutMs`.
 */
export async function probeLive (url: string, timeoutMs = 30_000): Promise<{ outcome: string, ms: number }> {
  const started = performance.now()
  const outcome = await new Promise<string>((resolve) => {
    const request = get(`${url}/health/live`, { agent: false, timeout: timeoutMs }, (res) => {
      res.resume()
      res.on('end', () => resolve(String(res.statusCode)))
    })
    request.on('timeout', () => request.destroy(Object.assign(new Error('probe timed out'), { code: 'TIMEOUT' })))
    request.on('error', (error: Error & { code?: string }) => resolve(error.code ?? error.name))
  })
  return { outcome, ms: performance.now() - started }
}
