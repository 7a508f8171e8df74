import { access, readFile } from 'node:fs/promises'
import { join } from 'node:path'

/** pydicom's test corpus, real files nobody here wrote: Debian's python3-pydicom, installed by `npm test`'s pretest. */
export const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files'

export async function pydicomFile (name: string): Promise<Buffer> {
  const path = join(PYDICOM_FILES, name)
  try {
    await access(path)
  } catch {
    throw new Error(`${path} is missing: run \`bash scripts/apt-install.sh python3-pydicom\` (npm test's pretest does)`)
  }
  return await readFile(path)
}
