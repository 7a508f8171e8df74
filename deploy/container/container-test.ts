/**
 * npm run container:test: builds the service image with podman and runs it as a hospital's container host
 * would (read-only root file system, a tmpfs for /tmp, a volume for /data), then checks what its users rely on:
 * it becomes ready, runs as a non-root user, answers a real JPEG and a DICOM file exactly as the service does
 * outside the container, answers FHIR, passes its own HEALTHCHECK, on SIGTERM finishes the request in flight
 * and exits 0 within its grace period, and a new container on the same volume has the answer's record (the
 * embedded database under DATA_DIR). Prints the image's size and what makes it up.
 *
 * On our machines images cannot be pulled and the npm registry cannot be reached from inside a container, so:
 * the base is the official node image when it can be pulled, else a Debian trixie base made by mmdebstrap
 * (deploy/container/base-image.sh, cached); the dependencies are installed on this host
 * (deploy/container/install-deps.sh, cached by the lock file's hash) and handed to the build (DEPS=staged).
 * Needs root (rootful podman) and Debian's podman, runc and mmdebstrap, which it installs when missing.
 */
import { execFile, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, rename, rm } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { freePort, REPO } from '../../bench/processes.js'
import { buildApp } from '../../app.js'
import { fhirR4Validator } from '../../test/helpers/fhir-schema.js'
import { splitUpload } from '../../test/helpers/split-upload.js'
import { ctKidneyImage, fileUpload, RECORDS_OFF, SHARED } from '../../test/helper.js'

const run = promisify(execFile)
const IMAGE = 'localhost/kidney-stone-service:test'
const OFFICIAL_BASE = 'docker.io/library/node:20-bookworm-slim'
const LOCAL_BASE = 'localhost/kidney-node-base:trixie'
const CACHE = process.env.CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kidney-stone-service')
const PODMAN_ENV = { ...process.env, CONTAINERS_CONF: join(REPO, 'deploy/container/containers.conf'), CONTAINER_ENGINE: 'podman', CACHE_DIR: CACHE }
const DICOM_FILE = join(SHARED, 'data/dicom/ct1-unc-jpeg-ls.dcm')
const TOOLS = { podman: 'podman', runc: 'runc', mmdebstrap: 'mmdebstrap' }

let passed = 0
let failed = 0
function check (ok: boolean, what: string, detail = ''): void {
  if (ok) passed++
  else failed++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail !== '' ? `: ${detail}` : ''}`)
}

/** Stops the run with a reason when a step cannot be taken here (no root, a tool missing), exit code 2. */
function cannotRun (reason: string): never {
  console.log(`container:test cannot run here: ${reason}`)
  process.exit(2)
}

async function podman (args: string[], options: { allowFailure?: boolean } = {}): Promise<{ stdout: string, stderr: string, code: number }> {
  try {
    const { stdout, stderr } = await run('podman', args, { env: PODMAN_ENV, maxBuffer: 64 * 1024 * 1024 })
    return { stdout, stderr, code: 0 }
  } catch (error) {
    const e = error as { stdout?: string, stderr?: string, code?: number }
    if (options.allowFailure !== true) throw new Error(`podman ${args.join(' ')} failed: ${e.stderr ?? String(error)}`)
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 }
  }
}

function stepOrStop (command: string, args: string[], what: string): void {
  const started = Date.now()
  const result = spawnSync(command, args, { cwd: REPO, env: PODMAN_ENV, stdio: 'inherit' })
  if (result.status !== 0) throw new Error(`${what} failed (exit ${result.status ?? result.signal})`)
  console.log(`     ${what}: ${((Date.now() - started) / 1000).toFixed(0)} s`)
}

function preflight (): void {
  if (process.getuid?.() !== 0) cannotRun('podman runs rootful here (no user namespaces set up for rootless): run as root')
  const missing = Object.entries(TOOLS).filter(([, tool]) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0).map(([pkg]) => pkg)
  if (missing.length > 0) {
    console.log(`     installing Debian's ${missing.join(', ')}`)
    const install = spawnSync('bash', [join(REPO, 'scripts/apt-install.sh'), ...missing], { stdio: 'inherit' })
    if (install.status !== 0) cannotRun(`Debian's ${missing.join(', ')} could not be installed`)
  }
}

async function baseImage (): Promise<string> {
  if ((await podman(['image', 'exists', OFFICIAL_BASE], { allowFailure: true })).code === 0) return OFFICIAL_BASE
  const pull = await podman(['pull', '--quiet', OFFICIAL_BASE], { allowFailure: true })
  if (pull.code === 0) return OFFICIAL_BASE
  console.log(`     ${OFFICIAL_BASE} cannot be pulled here (${pull.stderr.trim().split('\n').at(-1) ?? ''}); local Debian base instead`)
  stepOrStop('bash', [join(REPO, 'deploy/container/base-image.sh'), LOCAL_BASE], `base image ${LOCAL_BASE}`)
  return LOCAL_BASE
}

/** The dependencies installed on this host from the lock file, once per lock file. */
async function stagedDependencies (): Promise<string> {
  const hash = createHash('sha256')
  for (const file of ['package-lock.json', '.npmrc']) hash.update(await readFile(join(REPO, file)))
  const dir = join(CACHE, 'deps', hash.digest('hex').slice(0, 16))
  if (existsSync(join(dir, 'complete'))) return dir
  const partial = `${dir}.partial`
  await rm(partial, { recursive: true, force: true })
  stepOrStop('sh', [join(REPO, 'deploy/container/install-deps.sh'), partial], 'npm ci on the host (all, then production only)')
  await rm(dir, { recursive: true, force: true })
  await rename(partial, dir)
  await run('touch', [join(dir, 'complete')])
  return dir
}

async function build (): Promise<void> {
  const base = await baseImage()
  const deps = await stagedDependencies()
  // --format docker keeps HEALTHCHECK (the OCI format has no field for it); --network host: the build's RUN
  // steps need no network, and this avoids setting up a container network for them
  stepOrStop('bash', [join(REPO, 'deploy/container/build.sh'), '--format', 'docker', '--network', 'host',
    '--build-arg', `BASE_IMAGE=${base}`, '--build-arg', 'DEPS=staged', '--build-context', `staged-deps=${deps}`,
    '-t', IMAGE], `podman build on ${base}`)
}

async function describeImage (): Promise<void> {
  const [info] = JSON.parse((await podman(['image', 'inspect', IMAGE])).stdout) as Array<{
    Size: number, Labels: Record<string, string>, Config: { User: string, StopSignal?: string }, Healthcheck?: { Test: string[] }
  }>
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }
  const sidecar = JSON.parse(await readFile(join(REPO, 'model/kidney-stone-cnn.json'), 'utf8')) as { version: string }
  check(info.Labels['org.opencontainers.image.version'] === pkg.version, 'label org.opencontainers.image.version is package.json\'s', info.Labels['org.opencontainers.image.version'])
  check(info.Labels['io.kidney-stone.model.version'] === sidecar.version, 'label io.kidney-stone.model.version is the shipped model\'s', info.Labels['io.kidney-stone.model.version'])
  check(/^[0-9a-f]{40}$/.test(info.Labels['org.opencontainers.image.revision'] ?? ''), 'label org.opencontainers.image.revision is a commit')
  check(info.Config.User === '10001:10001', 'runs as user 10001 (numeric, not root)', info.Config.User)
  check(info.Config.StopSignal === 'SIGTERM', 'STOPSIGNAL SIGTERM', info.Config.StopSignal ?? 'none')
  check((info.Healthcheck?.Test ?? []).join(' ').includes('/health/ready'), 'HEALTHCHECK on /health/ready')
  console.log(`\nimage ${IMAGE}: ${(info.Size / 1e6).toFixed(0)} MB`)
  const history = (await podman(['history', '--format', '{{.Size}}\t{{.CreatedBy}}', IMAGE])).stdout
  for (const line of history.trim().split('\n').filter((row) => !row.startsWith('0 B'))) console.log(`  ${line.slice(0, 110)}`)
  const largest = await podman(['run', '--rm', '--network', 'none', IMAGE, 'sh', '-c',
    'du -sk /app/node_modules/* /app/node_modules/@*/* | sort -rn | head -8'])
  console.log('  largest packages in /app/node_modules (kB):')
  for (const line of largest.stdout.trim().split('\n')) console.log(`    ${line}`)
  console.log('')
  check(info.Size < 400e6, 'image under 400 MB', `${(info.Size / 1e6).toFixed(0)} MB`)
}

interface Answer { status: number, body: Record<string, unknown> }

async function predict (url: string, bytes: Buffer, filename: string, accept = 'application/json'): Promise<Answer> {
  const form = new FormData()
  form.append('file', new Blob([new Uint8Array(bytes)]), filename)
  const res = await fetch(`${url}/predict`, { method: 'POST', body: form, headers: { accept } })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

/** The same file classified in this process, by the same code (nothing kept): the container must answer the same. */
async function inProcess (bytes: Buffer, filename: string, accept = 'application/json'): Promise<Record<string, unknown>> {
  const app = await buildApp({ logger: false, config: { uploadMaxAgeMs: 0, records: RECORDS_OFF } })
  try {
    await app.model.loaded
    const upload = fileUpload(bytes, filename, 'application/octet-stream')
    const res = await app.inject({ method: 'POST', url: '/predict', ...upload, headers: { ...upload.headers, accept } })
    return res.json()
  } finally {
    await app.close()
  }
}

async function waitUntilReady (url: string, name: string): Promise<number> {
  const started = Date.now()
  while (Date.now() - started < 180_000) {
    if ((await fetch(`${url}/health/ready`).then((res) => res.status, () => 0)) === 200) return Date.now() - started
    const state = (await podman(['inspect', '--format', '{{.State.Status}}', name], { allowFailure: true })).stdout.trim()
    if (state !== 'running') throw new Error(`the container stopped before it was ready (${state})`)
    await sleep(250)
  }
  throw new Error('the container was not ready after 180 s')
}

async function exerciseContainer (name: string, volume: string): Promise<void> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // --network host with HOST=127.0.0.1: the container answers on this machine's loopback only
  await podman(['run', '-d', '--name', name, '--read-only', '--tmpfs', '/tmp:rw,size=64m,mode=1777',
    '--volume', `${volume}:/data`, '--network', 'host', '-e', 'HOST=127.0.0.1', '-e', `PORT=${port}`, IMAGE])
  const readyMs = await waitUntilReady(url, name)
  check(true, 'GET /health/ready answered 200', `${(readyMs / 1000).toFixed(1)} s after start`)

  const uid = (await podman(['exec', name, 'id', '-u'])).stdout.trim()
  check(uid === '10001', 'the service process runs as uid 10001', uid)
  const write = await podman(['exec', name, 'sh', '-c', 'echo x > /app/probe'], { allowFailure: true })
  check(write.code !== 0 && /read-only/i.test(write.stderr), 'the root file system is read-only', write.stderr.trim())

  const jpeg = await ctKidneyImage('test/stone')
  const fromContainer = await predict(url, jpeg, 'slice.jpg')
  const expected = await inProcess(jpeg, 'slice.jpg')
  check(fromContainer.status === 200, 'POST /predict with a real CT JPEG: 200', String(fromContainer.status))
  check(fromContainer.body.prediction === expected.prediction &&
    JSON.stringify(fromContainer.body.probabilities) === JSON.stringify(expected.probabilities),
  'the same prediction and probabilities as the service outside the container',
  `${JSON.stringify(fromContainer.body.probabilities)} vs ${JSON.stringify(expected.probabilities ?? expected)}`)
  const stored = (await podman(['exec', name, 'find', '/data/uploads', '-type', 'f'])).stdout.trim().split('\n').filter(Boolean)
  check(stored.length >= 1, 'the upload is kept on the /data volume', `${stored.length} file(s)`)

  const dicom = await readFile(DICOM_FILE)
  const dicomAnswer = await predict(url, dicom, 'slice.dcm')
  const dicomExpected = await inProcess(dicom, 'slice.dcm')
  check(dicomAnswer.status === 200 && JSON.stringify(dicomAnswer.body.probabilities) === JSON.stringify(dicomExpected.probabilities),
    'POST /predict with a JPEG-LS DICOM file: 200, the same probabilities as outside', `${dicomAnswer.status} ${JSON.stringify(dicomAnswer.body.probabilities)}`)
  const fhir = await predict(url, dicom, 'slice.dcm', 'application/fhir+json')
  const validate = fhirR4Validator('DiagnosticReport')
  check(fhir.status === 200 && fhir.body.resourceType === 'DiagnosticReport' && validate(fhir.body),
    'Accept: application/fhir+json: a DiagnosticReport valid against the FHIR R4 schema',
    `${fhir.status} ${String(fhir.body.resourceType)} ${JSON.stringify(validate.errors?.slice(0, 2) ?? [])}`)

  const health = await podman(['healthcheck', 'run', name], { allowFailure: true })
  check(health.code === 0, 'the image\'s HEALTHCHECK passes', (health.stdout + health.stderr).trim() || 'healthy')

  const burst = await Promise.all(Array.from({ length: 32 }, async () => (await predict(url, jpeg, 'slice.jpg')).status))
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec((await podman(['exec', name, 'cat', '/proc/1/status'])).stdout)?.[1])
  check(burst.every((status) => status === 200), '32 concurrent requests: all 200', burst.join(','))
  console.log(`     RSS of the service in the container after them: ${(rssKb / 1024).toFixed(0)} MiB`)

  const graceMs = 10_000
  const inFlight = splitUpload(port, jpeg)
  await inFlight.accepted
  const signalledAt = Date.now()
  await podman(['kill', '--signal', 'TERM', name])
  await sleep(500)
  inFlight.finish()
  const answer = await inFlight.answer
  const body = JSON.parse(answer.body) as { prediction?: string }
  check(answer.status === 200 && typeof body.prediction === 'string', 'a request in flight at SIGTERM gets its complete answer', `${answer.status} ${body.prediction ?? ''}`)
  const exitCode = (await podman(['wait', name])).stdout.trim()
  const stoppedMs = Date.now() - signalledAt
  check(exitCode === '0', 'the container exits 0 after SIGTERM', `exit ${exitCode} after ${(stoppedMs / 1000).toFixed(1)} s`)
  check(stoppedMs < graceMs, `it stopped within the grace period (SHUTDOWN_GRACE_MS, ${graceMs / 1000} s)`, `${(stoppedMs / 1000).toFixed(1)} s`)
  const logs = await podman(['logs', name])
  check(!/uncaught|killed by timeout/.test(logs.stdout + logs.stderr), 'no uncaught error or forced exit in the log')

  // The embedded records database lives on the /data volume: a new container on the same volume has the answer.
  const second = `${name}-again`
  await podman(['run', '-d', '--name', second, '--read-only', '--tmpfs', '/tmp:rw,size=64m,mode=1777',
    '--volume', `${volume}:/data`, '--network', 'host', '-e', 'HOST=127.0.0.1', '-e', `PORT=${port}`, IMAGE])
  try {
    await waitUntilReady(url, second)
    const res = await fetch(`${url}/predictions/${String(fromContainer.body.id)}`)
    const stored = await res.json() as Record<string, unknown>
    check(res.status === 200 && JSON.stringify(stored.probabilities) === JSON.stringify(fromContainer.body.probabilities),
      'a new container on the same volume reads the answer back from the embedded database', `${res.status}`)
  } finally {
    await podman(['rm', '--force', second], { allowFailure: true })
  }
}

async function main (): Promise<void> {
  preflight()
  await build()
  await describeImage()
  const name = `kidney-container-test-${process.pid}`
  const volume = `${name}-data`
  try {
    await exerciseContainer(name, volume)
  } finally {
    await podman(['rm', '--force', name], { allowFailure: true })
    await podman(['volume', 'rm', '--force', volume], { allowFailure: true })
    // images of earlier builds that nothing uses any more; today's stay as the build cache of the next run
    await podman(['image', 'prune', '--force', '--filter', 'until=24h'], { allowFailure: true })
  }
  console.log(`\ncontainer:test: ${passed} passed, ${failed} failed`)
  process.exitCode = failed === 0 ? 0 : 1
}

await main()
