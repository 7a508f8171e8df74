import { readFileSync } from 'node:fs'

/** Name and version as package.json states them, so the API reports what is deployed. */
export const packageInfo = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8')
) as { name: string, version: string }
