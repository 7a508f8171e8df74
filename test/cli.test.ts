import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { ctKidneyFiles, SHARED } from './helper.js'

const BIN = fileURLToPath(new URL('../bin/kidney-stone.js', import.meta.url))
const DICOM_DIR = join(SHARED, 'data/dicom')

interface Run { code: number, stdout: string, stderr: string }

/** Runs the installed bin entry as a user would; stdout is a pipe, so no progress bar is expected. */
async function cli (...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { maxBuffer: 16 * 1024 * 1024 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number, stdout: string, stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

t.test('--help explains every flag', async (t) => {
  const { code, stdout } = await cli('predict', '--help')
  t.equal(code, 0)
  for (const flag of ['--url', '--api-key', '--api-key-header', '--token', '--model', '--threads', '--max-pixels',
    '--window-center', '--window-width', '--format', '--out', '--no-progress']) {
    t.match(stdout, new RegExp(`${flag} .*\\S`), flag)
  }
})

t.test('in-process JSON over a DICOM folder, an image and a missing file', async (t) => {
  const [jpeg] = await ctKidneyFiles('test/stone', 1)
  const { code, stdout, stderr } = await cli('predict', DICOM_DIR, jpeg, '/no/such/slice.png')
  t.equal(code, 1, 'one file failed, so the exit code is 1')
  t.match(stderr, /1 of 7 file\(s\) failed/)
  t.notMatch(stdout, /█|░/, 'no progress bar when stdout is not a terminal')
  const results = JSON.parse(stdout) as Array<Record<string, any>>
  t.same(results.map((r) => r.file.split('/').at(-1)), [
    'ct-small-pydicom.dcm', 'ct1-unc-explicit-big-endian.dcm', 'ct1-unc-explicit-little-endian.dcm',
    'ct1-unc-implicit-little-endian.dcm', 'ct1-unc-jpeg-ls.dcm', jpeg.split('/').at(-1), 'slice.png'
  ], 'folder contents sorted, then the named files in order')
  const ct1 = results.filter((r) => r.file.includes('ct1-unc'))
  t.equal(ct1.length, 4)
  for (const r of ct1) {
    t.same(r.probabilities, ct1[0].probabilities, `${r.file}: same prediction as the other encodings`)
    t.equal(r.dicom.seriesInstanceUid, '1.3.6.1.4.1.5962.1.3.1.1.20040826185059.5457')
  }
  t.ok(['Normal', 'Stone'].includes(results[5].prediction), 'the JPEG is classified')
  t.equal(results[5].dicom, undefined, 'no DICOM UIDs for a JPEG')
  t.same(results[6].error.code, 'READ_ERROR')
})

t.test('CSV to --out, exit code 0 when every file succeeded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-cli-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const out = join(dir, 'results.csv')
  const { code, stdout } = await cli('predict', join(DICOM_DIR, 'ct1-unc-jpeg-ls.dcm'), join(DICOM_DIR, 'ct-small-pydicom.dcm'), '--format', 'csv', '--out', out)
  t.equal(code, 0)
  t.equal(stdout, '', 'results go to the file, not stdout')
  const lines = (await readFile(out, 'utf8')).trimEnd().split('\n')
  t.equal(lines.length, 3)
  t.match(lines[0], /^file,prediction,confidence,probability_stone,/)
  t.match(lines[1], /ct1-unc-jpeg-ls\.dcm,(Normal|Stone),/)
  t.match(lines[1], /1\.3\.6\.1\.4\.1\.5962\.1\.1\.1\.1\.1\.20040826185059\.5457,,$/, 'SOP Instance UID, empty error columns')
})

t.test('an unknown --format is a usage error', async (t) => {
  const { code, stderr } = await cli('predict', DICOM_DIR, '--format', 'xml')
  t.equal(code, 1)
  t.match(stderr, /xml/)
})
