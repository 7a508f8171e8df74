import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { build, ctKidneyImage, fileUpload } from './helper.js'

const run = promisify(execFile)
const REPO = fileURLToPath(new URL('..', import.meta.url))
const MONITORING = join(REPO, 'deploy/monitoring')
/** Series Prometheus makes itself, not the service. */
const PROMETHEUS_OWN = new Set(['up'])

async function promtool (args: string[]): Promise<{ code: number, output: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: MONITORING })
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const e = error as { code?: number | string, stdout?: string, stderr?: string }
    if (e.code === 'ENOENT') throw new Error('promtool is missing: `bash scripts/apt-install.sh prometheus` (npm test\'s pretest runs it)')
    return { code: Number(e.code), output: `${e.stdout ?? ''}${e.stderr ?? ''}` }
  }
}

/** The PromQL expressions of the alert rules and of the dashboard's panels. */
async function expressions (): Promise<{ rules: string[], dashboard: string[] }> {
  const { parse } = await import('yaml')
  const rules = parse(await readFile(join(MONITORING, 'alerts.yaml'), 'utf8')) as { groups: Array<{ rules: Array<{ expr: string }> }> }
  const dashboard = JSON.parse(await readFile(join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> }
  return {
    rules: rules.groups.flatMap((group) => group.rules.map((rule) => rule.expr)),
    dashboard: dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr))
  }
}

/**
 * Metric names in PromQL: with label matchers, grouping clauses and strings removed, the identifiers that are
 * not followed by `(` (a function) and are not operators or keywords.
 */
function metricNames (expr: string): string[] {
  const bare = expr.replace(/"[^"]*"/g, '').replace(/\{[^}]*\}/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset'])
  const names = [...bare.matchAll(/(?<![\w.])([a-zA-Z_:][\w:]*)(?!\s*\(|[\w:])/g)].map((m) => m[1])
  return [...new Set(names.filter((name) => !keywords.has(name)))]
}

/** Every `code` a typed error of the service can carry, from its error classes. */
async function errorCodes (): Promise<Set<string>> {
  const codes = new Set<string>()
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) await walk(path)
      else if (entry.name.endsWith('.ts')) {
        const source = await readFile(path, 'utf8')
        // ServiceError(code, status, ...) and RetryLaterError(code, message, retryAfter) (always 503) and their subclasses
        for (const m of source.matchAll(/'([A-Z][A-Z_]+)', [45]\d\d\b/g)) codes.add(m[1])
        for (const m of source.matchAll(/(?:super|new RetryLaterError)\('([A-Z][A-Z_]+)', /g)) codes.add(m[1])
      }
    }
  }
  for (const dir of ['inference', 'plugins', 'records']) await walk(join(REPO, dir)).catch((error: { code?: string }) => { if (error.code !== 'ENOENT') throw error })
  return codes
}

t.test('promtool: the alert rules are valid and their unit tests pass', async (t) => {
  const check = await promtool(['check', 'rules', 'alerts.yaml'])
  t.equal(check.code, 0, check.output)
  t.match(check.output, /SUCCESS: \d+ rules found/)
  const unit = await promtool(['test', 'rules', 'alerts.test.yaml'])
  t.equal(unit.code, 0, unit.output)
  t.match(unit.output, /SUCCESS/)
})

t.test('every metric, stage and error code named in the rules and the dashboard is in a live /metrics scrape', async (t) => {
  const app = await build(t)
  t.equal((await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/predict', ...fileUpload(Buffer.from('not an image')) })).statusCode, 415)
  const scrape = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const families = new Map([...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]))
  const exists = (name: string): boolean => families.has(name) ||
    (/_(bucket|sum|count)$/.test(name) && families.get(name.replace(/_(bucket|sum|count)$/, '')) === 'histogram')

  const { rules, dashboard } = await expressions()
  t.ok(rules.length >= 6 && dashboard.length >= 10, `${rules.length} rules, ${dashboard.length} panel queries`)
  const named = new Set([...rules, ...dashboard].flatMap(metricNames))
  t.ok(named.has('kidney_ready') && named.has('kidney_http_errors_total'), 'the names are found in the expressions')
  for (const name of named) {
    if (PROMETHEUS_OWN.has(name)) continue
    t.ok(exists(name), `${name} is exported by the service`)
  }
  const stages = new Set([...[...rules, ...dashboard].join('\n').matchAll(/(?<!\w)stage(?:=~|=)"([^"]+)"/g)].flatMap((m) => m[1].split('|')))
  for (const stage of stages) t.match(scrape, `stage="${stage}"`, `stage ${stage} is observed`)
  const codes = await errorCodes()
  const namedCodes = new Set([...rules.join('\n').matchAll(/(?<!\w)code(?:=~|!~|!=|=)"([^"]+)"/g)].flatMap((m) => m[1].split('|')))
  for (const code of namedCodes) t.ok(codes.has(code), `error code ${code} is one the service answers with`)
})

t.test('the Grafana dashboard: unique panel ids, every query on the chosen Prometheus and job', async (t) => {
  const dashboard = JSON.parse(await readFile(join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as {
    uid: string, templating: { list: Array<{ name: string }> }, panels: Array<{ id: number, type: string, title: string, datasource?: { uid: string }, targets?: Array<{ expr: string }> }>
  }
  t.ok(dashboard.uid.length > 0)
  t.same(dashboard.templating.list.map((variable) => variable.name), ['datasource', 'job'])
  const ids = dashboard.panels.map((panel) => panel.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
    t.equal(panel.datasource?.uid, '${datasource}', `${panel.title}: the chosen Prometheus`)
    t.ok((panel.targets ?? []).length > 0 && panel.targets?.every((target) => target.expr.includes('job="$job"')), `${panel.title}: queries of the chosen job`)
  }
})
