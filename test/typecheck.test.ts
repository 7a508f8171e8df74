import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'

// tsx runs the sources without checking their types; the container build type-checks the server and CLI entry
// points on their own (tsconfig.image.json), so a declaration reachable only from the whole project fails there.
const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))

for (const config of ['tsconfig.json', 'tsconfig.image.json']) {
  t.test(`${config} type-checks without errors`, async (t) => {
    const project = fileURLToPath(new URL(`../${config}`, import.meta.url))
    const { stdout } = await promisify(execFile)(process.execPath, [tsc, '--noEmit', '-p', project], { maxBuffer: 16 * 1024 * 1024 })
      .catch((error: { stdout: string }) => error)
    t.equal(stdout, '', stdout)
  })
}
