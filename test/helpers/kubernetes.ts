import { execFile } from 'node:child_process'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import * as models from 'kubernetes-models'
import { parse, parseAllDocuments, stringify } from 'yaml'

const run = promisify(execFile)

/** A rendered Kubernetes object; only the fields the checks read are typed. */
export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string, namespace?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
  data?: Record<string, string>
  spec?: any
}

/** The kustomize inside kubectl, which must be v5 or later (components, `labels`). */
export async function kustomizeVersion (): Promise<string> {
  const { stdout } = await run('kubectl', ['version', '--client', '-o', 'json'])
  return (JSON.parse(stdout) as { kustomizeVersion?: string }).kustomizeVersion ?? 'none'
}

/**
 * `kubectl kustomize` of an overlay of deploy/kubernetes, optionally with components switched on: the tree is
 * copied to a temporary folder and the components added to the overlay's kustomization, as a user would.
 */
export async function renderOverlay (kubernetesDir: string, overlay: string, components: string[] = []): Promise<K8sObject[]> {
  const copy = await mkdtemp(join(tmpdir(), 'kidney-kustomize-'))
  try {
    await cp(kubernetesDir, copy, { recursive: true })
    const file = join(copy, 'overlays', overlay, 'kustomization.yaml')
    const kustomization = parse(await readFile(file, 'utf8')) as Record<string, unknown>
    if (components.length > 0) {
      kustomization.components = components.map((name) => `../../components/${name}`)
      await writeFile(file, stringify(kustomization))
    }
    const { stdout } = await run('kubectl', ['kustomize', join(copy, 'overlays', overlay)], { maxBuffer: 16 * 1024 * 1024 })
    return parseAllDocuments(stdout).map((doc) => doc.toJS() as K8sObject)
  } finally {
    await rm(copy, { recursive: true, force: true })
  }
}

type ModelClass = new (data: unknown) => { validate: () => void }

/** The kubernetes-models class of an object's apiVersion and kind (e.g. networking.k8s.io/v1 -> networkingK8sIo.v1). */
function modelOf (object: K8sObject): ModelClass | undefined {
  const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : [undefined, object.apiVersion]
  const groupKey = group === undefined ? undefined : group.replace(/\.(\w)/g, (_, c: string) => c.toUpperCase())
  const versions = (groupKey === undefined ? models : (models as Record<string, any>)[groupKey]) as Record<string, any> | undefined
  return versions?.[version]?.[object.kind] as ModelClass | undefined
}

/** Validates against the Kubernetes JSON schema of its kind; the error message, or undefined when valid. */
export function schemaError (object: K8sObject): string | undefined {
  const Model = modelOf(object)
  if (Model === undefined) return `no schema for ${object.apiVersion} ${object.kind}`
  // kustomize writes a long Secret value as several base64 lines; the API server's decoder skips line breaks,
  // the schema's "byte" format does not
  const data = object.kind === 'Secret' && object.data !== undefined
    ? Object.fromEntries(Object.entries(object.data).map(([key, value]) => [key, value.replace(/\s/g, '')]))
    : object.data
  try {
    new Model({ ...object, ...(data !== undefined ? { data } : {}) }).validate()
    return undefined
  } catch (error) {
    return (error as Error).message
  }
}

export function find (objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.find((object) => object.kind === kind && (name === undefined || object.metadata.name === name))
  if (found === undefined) throw new Error(`no ${kind}${name !== undefined ? ` ${name}` : ''} in the rendered manifests`)
  return found
}

/** Whether every label of the selector is on the pod. */
export function selects (selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return selector !== undefined && Object.keys(selector).length > 0 &&
    Object.entries(selector).every(([key, value]) => labels[key] === value)
}

const BINARY_UNITS: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 }

/** A memory quantity (`512Mi`, `1Gi`, `1000000`) in bytes. */
export function bytesOf (quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti)?$/.exec(quantity)
  if (match === null) throw new Error(`unsupported quantity ${quantity}`)
  return Number(match[1]) * (match[2] !== undefined ? BINARY_UNITS[match[2]] : 1)
}

/** The `ENV` settings of the Dockerfile's last stage (what the container starts with). */
export function dockerfileEnv (dockerfile: string): Record<string, string> {
  const lastStage = dockerfile.replace(/\\\n/g, ' ').split(/^FROM /m).at(-1) ?? ''
  const env: Record<string, string> = {}
  for (const line of lastStage.split('\n').filter((l) => l.startsWith('ENV '))) {
    for (const pair of line.slice(4).trim().split(/\s+/)) {
      const [name, value] = pair.split('=')
      env[name] = value
    }
  }
  return env
}

/** The numeric user of the Dockerfile's `USER` instruction. */
export function dockerfileUser (dockerfile: string): number {
  return Number(/^USER (\d+)/m.exec(dockerfile)?.[1])
}
