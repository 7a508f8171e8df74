import { execFile } from 'node:child_process'
import { access } from 'node:fs/promises'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser } from 'playwright-core'

const CHROMIUM = '/usr/bin/chromium'
const APT_INSTALL = fileURLToPath(new URL('../../scripts/apt-install.sh', import.meta.url))

/**
 * Debian's chromium, installed by the repository's own script when missing (it waits for and retries a held dpkg
 * lock), launched headless with the flags a closed network needs. Throws when it cannot be had: the browser test
 * fails then, it never skips.
 */
export async function launchChromium (): Promise<Browser> {
  await promisify(execFile)('bash', [APT_INSTALL, 'chromium'], { maxBuffer: 16 * 1024 * 1024 })
  await access(CHROMIUM)
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync']
  })
}
