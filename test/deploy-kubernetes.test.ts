import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { loadConfig } from '../plugins/app/config.js'
import { CONFIG_VARIABLES } from '../plugins/app/env-schema.js'
import { build } from './helper.js'
import {
  bytesOf, dockerfileEnv, dockerfileUser, find, kustomizeVersion, renderOverlay, schemaError, selects, type K8sObject
} from './helpers/kubernetes.js'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const KUBERNETES = join(REPO, 'deploy/kubernetes')
const COMPONENTS = ['dicom-node', 'queue-depth-autoscaling']

t.test('kubectl kustomize is v5 or later (the machine image ships it)', async (t) => {
  const version = await kustomizeVersion()
  t.match(version, /^v([5-9]|\d{2,})\./, `kustomize ${version}`)
})

const renders = [
  { name: 'overlays/example', components: [] as string[] },
  { name: 'overlays/example with every component', components: COMPONENTS }
]

for (const render of renders) {
  t.test(`${render.name}: renders, every object is valid, and it fits the service's own configuration`, async (t) => {
    const objects = await renderOverlay(KUBERNETES, 'example', render.components)
    for (const object of objects) t.equal(schemaError(object), undefined, `${object.kind} ${object.metadata.name}: valid ${object.apiVersion}`)
    t.ok(objects.every((object) => object.metadata.namespace === 'radiology-ai'), 'every object in the overlay\'s namespace')
    await checkWorkload(t, objects)
  })
}

t.test('the DICOM node component: its port is the configured DICOM_PORT, exposed and let in by the network policy', async (t) => {
  const objects = await renderOverlay(KUBERNETES, 'example', ['dicom-node'])
  const pod = find(objects, 'Deployment', 'kidney-stone').spec.template
  const container = pod.spec.containers[0]
  const dicomPort = container.ports.find((port: { name: string }) => port.name === 'dicom')
  const config = find(objects, 'ConfigMap').data ?? {}
  t.equal(String(dicomPort?.containerPort), config.DICOM_PORT, 'container port dicom = DICOM_PORT')
  const service = find(objects, 'Service', 'kidney-stone-dicom')
  t.ok(selects(service.spec.selector, pod.metadata.labels), 'the DICOM Service selects the pods')
  t.same(service.spec.ports.map((port: { targetPort: string }) => port.targetPort), ['dicom'])
  t.not(service.spec.sessionAffinity, 'ClientIP', 'a PACS\'s parallel associations (one client address) can reach every replica')
  const policy = find(objects, 'NetworkPolicy', 'kidney-stone')
  t.ok(policy.spec.ingress.some((rule: { ports: Array<{ port: string }> }) => rule.ports.some((port) => port.port === 'dicom')),
    'the network policy lets the PACS in on the dicom port')
})

t.test('the queue-depth autoscaling component scales on a metric the service exports', async (t) => {
  const objects = await renderOverlay(KUBERNETES, 'example', ['queue-depth-autoscaling'])
  const hpa = find(objects, 'HorizontalPodAutoscaler', 'kidney-stone')
  const names = hpa.spec.metrics.filter((metric: { type: string }) => metric.type === 'Pods')
    .map((metric: { pods: { metric: { name: string } } }) => metric.pods.metric.name)
  t.same(names, ['kidney_inference_queued'])
  const app = await build(t)
  const scrape = (await app.inject({ method: 'GET', url: '/metrics' })).body
  for (const name of names) t.match(scrape, new RegExp(`^${name} `, 'm'), `${name} is in a /metrics scrape`)
})

async function checkWorkload (t: Test, objects: K8sObject[]): Promise<void> {
  const dockerfile = await readFile(join(REPO, 'Dockerfile'), 'utf8')
  const deployment = find(objects, 'Deployment', 'kidney-stone')
  const pod = deployment.spec.template
  const [container] = pod.spec.containers
  const labels: Record<string, string> = pod.metadata.labels

  t.ok(selects(deployment.spec.selector.matchLabels, labels), 'the Deployment selects its own pods')
  for (const kind of ['Service', 'PodDisruptionBudget', 'NetworkPolicy']) {
    const object = find(objects, kind, 'kidney-stone')
    const selector = kind === 'Service' ? object.spec.selector : kind === 'NetworkPolicy' ? object.spec.podSelector.matchLabels : object.spec.selector.matchLabels
    t.ok(selects(selector, labels), `the ${kind} selects the pods (an empty selector would select every pod)`)
  }
  const hpa = find(objects, 'HorizontalPodAutoscaler', 'kidney-stone')
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name }, 'the HPA scales the Deployment')
  t.ok(hpa.spec.minReplicas >= 2, 'at least two replicas, so the PDB lets a node drain')
  find(objects, 'ServiceAccount', pod.spec.serviceAccountName)

  // Security: what the image allows, the pod enforces.
  t.equal(pod.spec.securityContext.runAsNonRoot, true, 'runAsNonRoot')
  t.equal(pod.spec.securityContext.runAsUser, dockerfileUser(dockerfile), 'runAsUser is the image\'s USER')
  t.equal(pod.spec.securityContext.seccompProfile?.type, 'RuntimeDefault', 'seccomp RuntimeDefault')
  t.equal(container.securityContext.readOnlyRootFilesystem, true, 'read-only root file system')
  t.equal(container.securityContext.allowPrivilegeEscalation, false, 'no privilege escalation')
  t.same(container.securityContext.capabilities?.drop, ['ALL'], 'every capability dropped')
  t.equal(pod.spec.automountServiceAccountToken, false, 'no Kubernetes API token in the pod')

  // The environment the service will see: the image's ENV, the ConfigMap, the env entries (Secret values
  // resolved) and the Secret files mounted where the *_FILE variables point. loadConfig must accept it.
  const env: Record<string, string> = { ...dockerfileEnv(dockerfile) }
  const secretFiles = await mkdtemp(join(tmpdir(), 'kidney-k8s-secrets-'))
  t.teardown(async () => await rm(secretFiles, { recursive: true, force: true }))
  const names: string[] = []
  for (const source of container.envFrom ?? []) {
    const configMap = find(objects, 'ConfigMap', source.configMapRef.name)
    Object.assign(env, configMap.data)
    names.push(...Object.keys(configMap.data ?? {}))
  }
  for (const entry of container.env ?? []) {
    names.push(entry.name)
    const ref = entry.valueFrom?.secretKeyRef
    const value = ref !== undefined ? find(objects, 'Secret', ref.name).data?.[ref.key] : entry.value
    t.not(value, undefined, `${entry.name}: its value or Secret key exists`)
    env[entry.name] = ref !== undefined ? Buffer.from(value ?? '', 'base64').toString('utf8').trim() : value
  }
  for (const mount of container.volumeMounts) {
    const volume = pod.spec.volumes.find((v: { name: string }) => v.name === mount.name)
    if (volume?.secret === undefined) continue
    const secret = find(objects, 'Secret', volume.secret.secretName)
    for (const item of volume.secret.items) {
      t.not(secret.data?.[item.key], undefined, `Secret key ${item.key} exists for the mounted file ${item.path}`)
      const path = join(secretFiles, mount.mountPath, item.path)
      await mkdir(dirname(path), { recursive: true })
      await writeFile(path, Buffer.from(secret.data?.[item.key] ?? '', 'base64'))
      for (const [name, value] of Object.entries(env)) if (value === join(mount.mountPath, item.path)) env[name] = path
    }
  }
  for (const name of names) t.ok(CONFIG_VARIABLES.includes(name), `${name} is a variable the service reads`)
  const config = loadConfig(env)
  t.pass('the service accepts this environment (loadConfig)')

  // Ports, probes, scrape annotations: the service's own port and routes.
  const http = container.ports.find((port: { name: string }) => port.name === 'http')
  t.equal(http?.containerPort, config.port, 'container port http = PORT')
  t.equal(config.host, '0.0.0.0', 'listens on every interface of the pod')
  const service = find(objects, 'Service', 'kidney-stone')
  t.ok(service.spec.ports.every((port: { targetPort: string }) => container.ports.some((p: { name: string }) => p.name === port.targetPort)),
    'the Service targets named container ports')
  t.equal(pod.metadata.annotations['prometheus.io/port'], String(config.port), 'the scrape port is PORT')
  t.equal(config.records.store, 'postgres', 'records in PostgreSQL, shared by every replica')
  t.match(config.records.databaseUrl, /^postgres:\/\//, 'its URL read from the mounted Secret file')
  // the app as these settings make it (authentication on, as in the overlay), uploads in a temporary folder and
  // no records (the overlay's database is not here)
  const app = await build(t, { config: Object.fromEntries(Object.entries(config).filter(([key]) => key !== 'uploadDir' && key !== 'records')) })
  const probes = { startupProbe: 200, livenessProbe: 200, readinessProbe: 200 }
  for (const [probe, status] of Object.entries(probes)) {
    const check = container[probe]?.httpGet
    t.equal(check?.port, 'http', `${probe} on the http port`)
    const res = await app.inject({ method: 'GET', url: check?.path ?? '/none' })
    t.equal(res.statusCode, status, `${probe} ${check?.path as string}: ${status} from a ready service, without credentials`)
  }
  t.equal(container.readinessProbe.httpGet.path, '/health/ready', 'readiness follows the model and the records store')
  const metrics = await app.inject({ method: 'GET', url: pod.metadata.annotations['prometheus.io/path'] })
  t.match(metrics.body, /^kidney_http_requests_total/m, 'the scrape path serves the service\'s metrics without credentials')

  // Writable places: every directory the service writes is on a writable volume.
  const mounted = (path: string): boolean => container.volumeMounts.some((mount: { mountPath: string, readOnly?: boolean, name: string }) =>
    mount.readOnly !== true && (path === mount.mountPath || path.startsWith(`${mount.mountPath}/`)) &&
    pod.spec.volumes.some((v: { name: string, emptyDir?: unknown, persistentVolumeClaim?: unknown }) =>
      v.name === mount.name && (v.emptyDir !== undefined || v.persistentVolumeClaim !== undefined)))
  for (const [name, path] of Object.entries({ UPLOAD_DIR: config.uploadDir, MODEL_CACHE_DIR: config.modelCacheDir, DATA_DIR: env.DATA_DIR, TMPDIR: '/tmp' })) {
    t.ok(mounted(path), `${name} (${path}) is on a writable volume`)
  }

  // Memory and shutdown: the service sheds load before the kernel kills it, and finishes before it is killed.
  const limit = bytesOf(container.resources.limits.memory)
  t.ok(bytesOf(container.resources.requests.memory) <= limit, 'memory request within the limit')
  t.ok(config.pressure.maxRssBytes > 0 && config.pressure.maxRssBytes < limit,
    `PRESSURE_MAX_RSS_BYTES (${config.pressure.maxRssBytes}) below the memory limit (${limit}): 503 before an OOM kill`)
  // PRESSURE_MAX_RSS_BYTES turns away only requests that arrive after RSS was sampled above it: the limit must hold
  // the peak of the requests already admitted, which bench:payloads measures (100 simultaneous 19 MiB uploads).
  const payloadRuns = await payloadsRunsWith(config.maxInflightBytes, config.pressure.maxRssBytes)
  t.ok(payloadRuns.length > 0, 'bench:payloads has been run with this MAX_INFLIGHT_BYTES and PRESSURE_MAX_RSS_BYTES')
  for (const run of payloadRuns) {
    t.ok(run.peakBytes < limit, `the memory limit (${limit}) is above the peak RSS of bench:payloads on ${run.date} (${run.peakBytes})`)
  }
  const preStopS = Number(container.lifecycle?.preStop?.exec?.command?.at(-1) ?? 0)
  t.ok(pod.spec.terminationGracePeriodSeconds * 1000 > preStopS * 1000 + config.shutdownGraceMs,
    `terminationGracePeriodSeconds (${pod.spec.terminationGracePeriodSeconds} s) > preStop (${preStopS} s) + SHUTDOWN_GRACE_MS (${config.shutdownGraceMs} ms)`)
}

/** The bench:payloads results (bench/results) run with these memory settings, and their peak RSS in bytes. */
async function payloadsRunsWith (maxInflightBytes: number, pressureMaxRssBytes: number): Promise<Array<{ date: string, peakBytes: number }>> {
  const dir = join(REPO, 'bench/results')
  const runs = await Promise.all((await readdir(dir)).filter((name) => /^payloads-.*\.json$/.test(name)).map(async (name) =>
    JSON.parse(await readFile(join(dir, name), 'utf8')) as { date: string, config: { maxInflightBytes: number, pressureMaxRssBytes?: number }, rows: Array<{ rssPeakMiB: number }> }))
  return runs.filter((run) => run.config.maxInflightBytes === maxInflightBytes && run.config.pressureMaxRssBytes === pressureMaxRssBytes)
    .map((run) => ({ date: run.date, peakBytes: Math.max(...run.rows.map((row) => row.rssPeakMiB)) * 1024 * 1024 }))
}
