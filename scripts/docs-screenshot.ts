import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { buildApp } from '../app.js'
import { loadConfig } from '../plugins/app/config.js'

/**
 * Renders /docs in Debian's headless Chromium (scripts/install-chromium.sh) with the service's real
 * headers, helmet's CSP included, checks that the /predict and /predict/batch operations were rendered
 * by Swagger UI's scripts and that no CSP violation was reported, and saves docs/swagger-ui.png.
 * Usage: npx tsx scripts/docs-screenshot.ts [out.png]
 */
const OUT = process.argv[2] ?? fileURLToPath(new URL('../docs/swagger-ui.png', import.meta.url))
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync', '--hide-scrollbars', '--window-size=1280,1400',
  '--virtual-time-budget=15000', '--enable-logging=stderr', '--v=0']

const run = promisify(execFile)

async function chromium (profile: string, ...args: string[]): Promise<{ stdout: string, stderr: string }> {
  return await run('chromium', [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, ...args], { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 })
}

// nothing kept: no uploads, no records (the screenshot shows the docs, and must not lock a running service's DATA_DIR)
const app = await buildApp({ logger: false, config: { uploadMaxAgeMs: 0, records: { ...loadConfig().records, store: 'off' } } })
const profile = await mkdtemp(join(tmpdir(), 'kidney-chromium-'))
try {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/docs`
  const csp = (await fetch(`${url}/static/index.html`)).headers.get('content-security-policy')
  if (csp === null) throw new Error('/docs was served without a Content-Security-Policy header')

  const { stdout: dom, stderr: log } = await chromium(profile, '--dump-dom', url)
  const paths = [...dom.matchAll(/data-path="([^"]+)"/g)].map((match) => match[1])
  for (const path of ['/predict', '/predict/batch']) {
    if (!paths.includes(path)) throw new Error(`Swagger UI did not render the ${path} operation (rendered: ${paths.join(', ') || 'none'})`)
  }
  const violations = log.split('\n').filter((line) => /Content Security Policy/i.test(line))
  // Reported, not fatal: Swagger UI sets a few inline styles at run time that the strict CSP blocks (cosmetic).
  for (const line of violations) process.stderr.write(`CSP report: ${line.replace(/^.*?"/, '').slice(0, 160)}\n`)

  await chromium(profile, `--screenshot=${OUT}`, url)
  process.stdout.write(`CSP: ${csp}\nrendered operations: ${paths.join(', ')}\nscreenshot: ${OUT}\n`)
} finally {
  await app.close()
  await rm(profile, { recursive: true, force: true })
}
