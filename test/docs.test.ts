import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { CONFIG_VARIABLES, EnvSchema } from '../plugins/app/env-schema.js'

// The docs stay true to the code: the configuration reference names exactly the variables the service reads, with
// their defaults; the API reference names every route of the generated OpenAPI document; links resolve.
const REPO = fileURLToPath(new URL('..', import.meta.url))
const DOCS = join(REPO, 'docs')
const markdownFiles = [join(REPO, 'README.md'),
  ...(await readdir(DOCS)).filter((name) => name.endsWith('.md')).map((name) => join(DOCS, name))]
const text = new Map(await Promise.all(markdownFiles.map(async (file) => [file, await readFile(file, 'utf8')] as const)))
const operations = text.get(join(DOCS, 'operations.md')) ?? ''
const api = text.get(join(DOCS, 'api.md')) ?? ''

/** Fenced code blocks and inline code spans removed: what is left is prose, headings, tables and links. */
function withoutCode (markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '')
}

/** The lines of one `## heading` section, up to the next heading of level 2 or 1. */
function section (markdown: string, heading: string): string {
  const lines = markdown.replace(/^```[\s\S]*?^```/gm, '').split('\n')
  const start = lines.findIndex((line) => line === `## ${heading}`)
  if (start === -1) return ''
  const end = lines.findIndex((line, index) => index > start && /^#{1,2} /.test(line))
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n')
}

/** Table rows of a section whose first cell names variables in backticks: name -> the row's default cell. */
function documentedVariables (markdown: string): Map<string, string> {
  const rows = new Map<string, string>()
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim())
    if (cells.length < 4 || cells[0] !== '') continue
    const names = [...cells[1].matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((match) => match[1])
    for (const name of names) rows.set(name, cells[2])
  }
  return rows
}

t.test('docs/operations.md documents exactly the variables the configuration reads, with their defaults', async (t) => {
  const documented = documentedVariables(section(operations, 'Configuration'))
  t.ok(CONFIG_VARIABLES.length > 40, `the configuration reads ${CONFIG_VARIABLES.length} variables`)
  for (const name of CONFIG_VARIABLES) t.ok(documented.has(name), `${name} is in the configuration tables of docs/operations.md`)
  for (const name of documented.keys()) {
    t.ok(CONFIG_VARIABLES.includes(name), `${name}, documented in docs/operations.md, is read by the configuration`)
  }
  for (const [name, schema] of Object.entries(EnvSchema.properties)) {
    const cell = documented.get(name)
    if (cell === undefined) continue
    const value: unknown = (schema as { default?: unknown }).default
    if (value === undefined) {
      t.match(cell, /^-/, `${name} has no default, and its row says so ("-")`)
    } else if (value === '') {
      t.match(cell, /^empty/, `${name}'s default is empty, and its row says so`)
    } else {
      const shown = typeof value === 'string' && isAbsolute(value) ? relative(REPO, value) : String(value)
      t.ok(cell.includes(`\`${shown}\``), `${name}'s default \`${shown}\` is in its row (${cell})`)
    }
  }
})

t.test('the README names only variables the configuration reads', async (t) => {
  const readme = text.get(join(REPO, 'README.md')) ?? ''
  const named = documentedVariables(section(readme, 'Configuration most users set'))
  t.ok(named.size > 5, `the README's table names ${named.size} variables`)
  for (const name of named.keys()) t.ok(CONFIG_VARIABLES.includes(name), `${name} (README) is read by the configuration`)
})

t.test('docs/api.md names every route of openapi.yaml', async (t) => {
  const document = parse(await readFile(join(REPO, 'openapi.yaml'), 'utf8')) as { paths: Record<string, Record<string, unknown>> }
  const routes = Object.entries(document.paths).flatMap(([path, operations]) =>
    Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`))
  t.ok(routes.length >= 8, `openapi.yaml has ${routes.length} routes`)
  for (const route of routes) t.ok(api.includes(`\`${route}\``), `\`${route}\` is in docs/api.md`)
})

/** GitHub's anchors for the headings of a markdown file (lower case, punctuation dropped, spaces to hyphens). */
function anchorsOf (markdown: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  for (const match of markdown.replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6} (.+)$/gm)) {
    const slug = match[1].trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
    const count = seen.get(slug) ?? 0
    anchors.add(count === 0 ? slug : `${slug}-${count}`)
    seen.set(slug, count + 1)
  }
  return anchors
}

t.test('relative links in README.md and docs/*.md resolve, #anchors included', async (t) => {
  let checked = 0
  for (const [file, markdown] of text) {
    const name = relative(REPO, file)
    for (const match of withoutCode(markdown).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1]
      if (/^[a-z]+:/i.test(target)) continue
      const [path, anchor] = target.split('#')
      const targetFile = path === '' ? file : resolve(dirname(file), decodeURIComponent(path))
      checked++
      if (!existsSync(targetFile)) {
        t.fail(`${name}: ${target} does not exist`)
        continue
      }
      if (anchor !== undefined && targetFile.endsWith('.md')) {
        const anchors = anchorsOf(text.get(targetFile) ?? await readFile(targetFile, 'utf8'))
        t.ok(anchors.has(anchor), `${name}: #${anchor} is a heading of ${relative(REPO, targetFile)}`)
      }
    }
  }
  t.ok(checked > 50, `${checked} relative links checked`)
})
