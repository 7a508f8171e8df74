import {
  ACCEPTED, CORRUPT, FILE_TOO_LARGE, MALFORMED, NO_FILE, TOO_MANY_FILES, TOO_MANY_PARTS, UNSUPPORTED, VALIDATION,
  type Category, type FileCase, type FormPart, type HostileCase, type HostileRequest, type Outcome
} from './types.js'

export const BOUNDARY = '----kidney-hostile-boundary-5c2a'

function partHeaders (part: FormPart): string {
  if (part.headers !== undefined) return part.headers
  const filename = part.filename !== undefined ? `; filename="${part.filename}"` : ''
  const type = part.contentType ?? (part.filename !== undefined ? 'application/octet-stream' : undefined)
  return `Content-Disposition: form-data; name="${part.name}"${filename}\r\n` + (type !== undefined ? `Content-Type: ${type}\r\n` : '')
}

/**
 * multipart/form-data written byte by byte, so that names and headers reach the server exactly as given
 * (NUL bytes, quotes, line breaks) and the closing boundary can be left out.
 */
export function encodeMultipart (parts: FormPart[], { close = true } = {}): Buffer {
  const chunks: Buffer[] = []
  for (const part of parts) {
    chunks.push(Buffer.from(`--${BOUNDARY}\r\n${partHeaders(part)}\r\n`, 'utf8'))
    chunks.push(Buffer.isBuffer(part.data) ? part.data : Buffer.from(part.data))
    chunks.push(Buffer.from('\r\n'))
  }
  if (close) chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`))
  return Buffer.concat(chunks)
}

export function multipartRequest (payload: Buffer, contentType = `multipart/form-data; boundary=${BOUNDARY}`): HostileRequest {
  return { method: 'POST', url: '/predict', headers: { 'content-type': contentType }, payload }
}

const filePart = (data: Buffer, filename = 'slice.jpg', contentType = 'image/jpeg'): FormPart =>
  ({ name: 'file', filename, contentType, data })

function form (category: Category, name: string, parts: FormPart[], expected: Outcome[]): HostileCase {
  return { category, name, request: multipartRequest(encodeMultipart(parts)), expected }
}

/** A valid slice under hostile or misleading names and types: the content decides, the name is never used. */
function namesAndTypes (jpeg: Buffer, png: Buffer): FileCase[] {
  const named = (name: string, filename: string, contentType: string, data = jpeg, category: Category = 'filename'): FileCase =>
    ({ category, name, data, filename, contentType, expected: ACCEPTED })
  return [
    named('JPEG named .png, sent as image/png', 'slice.png', 'image/png', jpeg, 'name-and-type'),
    named('PNG named .jpg, sent as image/jpeg', 'slice.jpg', 'image/jpeg', png, 'name-and-type'),
    named('JPEG named .exe, sent as application/x-msdownload', 'setup.exe', 'application/x-msdownload', jpeg, 'name-and-type'),
    named('JPEG sent as text/html', 'index.html', 'text/html', jpeg, 'name-and-type'),
    named('PNG sent as image/gif', 'slice.gif', 'image/gif', png, 'name-and-type'),
    named('JPEG without an extension', 'slice', 'application/octet-stream', jpeg, 'name-and-type'),
    named('path traversal ../../x.jpg', '../../x.jpg', 'image/jpeg'),
    named('deep path traversal', '../'.repeat(40) + 'etc/passwd', 'image/jpeg'),
    named('Windows path traversal', '..\\..\\windows\\system32\\x.jpg', 'image/jpeg'),
    named('absolute path', '/etc/cron.d/x.jpg', 'image/jpeg'),
    named('NUL byte in the name', 'x.jpg\u0000.sh', 'image/jpeg'),
    named('name of 10 kB', 'a'.repeat(10 * 1024) + '.jpg', 'image/jpeg'),
    named('unicode name', 'снимок-腎臓-كلية-🩻.jpg', 'image/jpeg'),
    named('right-to-left override in the name', 'slice\u202Egpj.exe', 'image/jpeg'),
    named('Windows reserved name', 'CON.jpg', 'image/jpeg'),
    named('empty name', '', 'image/jpeg')
  ]
}

/** Part headers that try to smuggle a second name or header: parsed as something, answered with a type. */
function headerTricks (jpeg: Buffer): HostileCase[] {
  const raw = (name: string, headers: string, expected: Outcome[]): HostileCase =>
    form('filename', name, [{ name: 'file', headers, data: jpeg }], expected)
  return [
    raw('quote in the name that re-opens the field name', 'Content-Disposition: form-data; name="file"; filename="a.jpg"; name="other"\r\n',
      [...ACCEPTED, ...NO_FILE]),
    raw('CRLF injected into the name', 'Content-Disposition: form-data; name="file"; filename="a.jpg\r\nContent-Type: text/html"\r\n',
      [...ACCEPTED, ...NO_FILE, ...MALFORMED]),
    raw('RFC 5987 encoded name with traversal', "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''..%2F..%2Fx.jpg\r\n",
      ACCEPTED),
    // busboy skips this part; with its default 16 KiB part buffer it never finished a skipped part of more than
    // that arriving with the closing boundary (plugins/external/multipart.ts): 408 at the request deadline.
    raw('part without Content-Disposition', 'Content-Type: image/jpeg\r\n', [...NO_FILE, ...MALFORMED]),
    raw('part whose Content-Disposition is not form-data', 'Content-Disposition: attachment; filename="a.jpg"\r\n', [...NO_FILE, ...MALFORMED])
  ]
}

function tinyFiles (maxFileBytes: number, jpeg: Buffer): FileCase[] {
  const tiny = (name: string, data: Buffer, expected: Outcome[]): FileCase =>
    ({ category: 'tiny-file', name, data, filename: 'slice.jpg', expected })
  return [
    tiny('0-byte file', Buffer.alloc(0), NO_FILE),
    tiny('1-byte file 0xFF', Buffer.from([0xff]), UNSUPPORTED),
    tiny('1-byte file "A"', Buffer.from('A'), UNSUPPORTED),
    tiny('2-byte JPEG SOI only', Buffer.from([0xff, 0xd8]), UNSUPPORTED),
    tiny('3-byte JPEG start', Buffer.from([0xff, 0xd8, 0xff]), CORRUPT),
    tiny('8-byte PNG signature only', Buffer.from('89504e470d0a1a0a', 'hex'), CORRUPT),
    { category: 'file-too-large', name: `file of ${maxFileBytes + 1} bytes`, filename: 'slice.jpg',
      data: Buffer.concat([jpeg, Buffer.alloc(maxFileBytes + 1 - jpeg.length)]), expected: FILE_TOO_LARGE }
  ]
}

function formShapes (jpeg: Buffer, maxFields: number): HostileCase[] {
  const text = (name: string, value: string): FormPart => ({ name, data: value })
  const fields = (count: number): FormPart[] => Array.from({ length: count }, (_, i) => text(`note${i}`, `value ${i}`))
  return [
    form('multiple-files', 'two files in the field "file"', [filePart(jpeg), filePart(jpeg)], TOO_MANY_FILES),
    form('multiple-files', 'a second file in another field', [filePart(jpeg), { ...filePart(jpeg), name: 'other' }], TOO_MANY_FILES),
    form('multiple-files', '20 files', Array.from({ length: 20 }, () => filePart(jpeg)), TOO_MANY_FILES),
    form('multiple-files', 'a text field "file" after the file', [filePart(jpeg), text('file', 'second')],
      [...TOO_MANY_FILES, ...NO_FILE, ...VALIDATION]),
    form('missing-file', 'only a text field', [text('comment', 'no image here')], NO_FILE),
    form('missing-file', 'text instead of a file in "file"', [text('file', 'not a file')], UNSUPPORTED),
    form('missing-file', 'the image in the field "image"', [{ ...filePart(jpeg), name: 'image' }], NO_FILE),
    form('missing-file', 'empty form (closing boundary only)', [], NO_FILE),
    form('extra-fields', 'file and a comment field', [filePart(jpeg), text('comment', 'patient 123')], ACCEPTED),
    form('extra-fields', `file and ${maxFields} fields (the limit)`, [filePart(jpeg), ...fields(maxFields)], ACCEPTED),
    form('extra-fields', `file and ${maxFields + 1} fields (over the limit)`, [filePart(jpeg), ...fields(maxFields + 1)], TOO_MANY_PARTS),
    form('extra-fields', 'field value of 64 kB', [filePart(jpeg), text('comment', 'x'.repeat(64 * 1024))], [...ACCEPTED, ...VALIDATION]),
    form('extra-fields', 'field named __proto__', [filePart(jpeg), text('__proto__', '{"polluted":true}')], VALIDATION),
    form('extra-fields', 'field named constructor', [filePart(jpeg), text('constructor', 'x')], VALIDATION),
    form('extra-fields', 'field name of 4 kB', [filePart(jpeg), text('n'.repeat(4096), 'x')], ACCEPTED),
    form('extra-fields', 'JSON field that is not JSON', [filePart(jpeg), { name: 'meta', contentType: 'application/json', data: '{nope' }],
      VALIDATION)
  ]
}

function malformedMultipart (jpeg: Buffer): HostileCase[] {
  const body = encodeMultipart([filePart(jpeg)])
  return [
    { category: 'malformed-multipart', name: 'multipart without a boundary', expected: MALFORMED,
      request: multipartRequest(body, 'multipart/form-data') },
    { category: 'malformed-multipart', name: 'boundary that never occurs in the body', expected: [...MALFORMED, ...NO_FILE],
      request: multipartRequest(body, 'multipart/form-data; boundary=not-in-the-body') },
    { category: 'malformed-multipart', name: 'body cut before the closing boundary', expected: MALFORMED,
      request: multipartRequest(encodeMultipart([filePart(jpeg)], { close: false })) },
    { category: 'malformed-multipart', name: 'body cut inside the file', expected: MALFORMED,
      request: multipartRequest(body.subarray(0, Math.floor(body.length / 2))) },
    { category: 'malformed-multipart', name: 'garbage body', expected: [...MALFORMED, ...NO_FILE],
      request: multipartRequest(Buffer.from('\x00\x01garbage\r\n\r\n--', 'latin1')) }
  ]
}

function nonMultipart (jpeg: Buffer, bodyLimitBytes: number): HostileCase[] {
  const raw = (name: string, contentType: string | undefined, payload: Buffer | string): HostileCase => ({
    category: 'non-multipart',
    name,
    expected: UNSUPPORTED,
    request: { method: 'POST', url: '/predict', headers: contentType === undefined ? {} : { 'content-type': contentType }, payload: Buffer.from(payload) }
  })
  return [
    raw('JSON object', 'application/json', '{}'),
    raw('JSON with the image as base64', 'application/json', JSON.stringify({ file: jpeg.toString('base64') })),
    raw(`JSON larger than the body limit (${bodyLimitBytes + 1} bytes)`, 'application/json', `"${'x'.repeat(bodyLimitBytes)}"`),
    raw('plain text', 'text/plain', 'hello'),
    raw('URL-encoded form', 'application/x-www-form-urlencoded', 'file=abc'),
    raw('raw JPEG as application/octet-stream', 'application/octet-stream', jpeg),
    raw('raw JPEG as image/jpeg', 'image/jpeg', jpeg),
    raw('multipart/mixed', `multipart/mixed; boundary=${BOUNDARY}`, encodeMultipart([filePart(jpeg)])),
    raw('XML', 'application/xml', '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'),
    raw('raw JPEG without a Content-Type', undefined, jpeg)
  ]
}

export interface RequestLimits {
  maxFileBytes: number
  maxFields: number
  bodyLimitBytes: number
}

/** Cases about the request rather than the image: names, form shape, framing, body type. */
export function requestCases (jpeg: Buffer, png: Buffer, limits: RequestLimits): { files: FileCase[], requests: HostileCase[] } {
  return {
    files: [...namesAndTypes(jpeg, png), ...tinyFiles(limits.maxFileBytes, jpeg)],
    requests: [...headerTricks(jpeg), ...formShapes(jpeg, limits.maxFields), ...malformedMultipart(jpeg),
      ...nonMultipart(jpeg, limits.bodyLimitBytes)]
  }
}
