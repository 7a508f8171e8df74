import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { buildWebBundle, WEB_BUNDLE_PATH } from '../scripts/build-web.js'

// The page's script is committed (web/public/app.js, served as is): it must be what web/src/ builds to today.

t.test('web/public/app.js is the bundle of web/src (run npm run web:build after a change)', async (t) => {
  t.equal(await readFile(WEB_BUNDLE_PATH, 'utf8'), await buildWebBundle())
})

t.test('web/src type-checks against the DOM and the generated client', async (t) => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))
  const project = fileURLToPath(new URL('../web/tsconfig.json', import.meta.url))
  const { stdout } = await promisify(execFile)(process.execPath, [tsc, '--noEmit', '-p', project]).catch((error: { stdout: string }) => error)
  t.equal(stdout, '', 'no type errors')
})

t.test('the page runs under the default CSP: no inline script or style, no other origin', async (t) => {
  const html = await readFile(new URL('../web/public/index.html', import.meta.url), 'utf8')
  t.notMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'every script is a file')
  t.notMatch(html, /\son[a-z]+=/i, 'no inline event handler')
  t.notMatch(html, /\sstyle=/i, 'no inline style')
  t.notMatch(html, /(src|href)="(https?:)?\/\//, 'nothing from another origin (no CDN)')
})
