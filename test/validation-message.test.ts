import { randomUUID } from 'node:crypto'
import t from 'tap'
import { build } from './helper.js'

// A path or query parameter that fails its schema is named, with what it must be. The old message was "The request
// params at /id does not match the API schema (see /docs)." for GET /predictions/nope: a JSON pointer into the
// framework's "params", and not a word of what an id is.
t.test('a path or query parameter that fails its schema is named, with what it must be', async (t) => {
  const app = await build(t, {}, { waitForModel: false })
  for (const [url, message] of [
    ['/predictions/nope', 'The path parameter "id" must be a UUID (see /docs).'],
    [`/predictions/urn:uuid:${randomUUID()}`, 'The path parameter "id" must be a UUID (see /docs).'],
    ['/studies/abc', 'The path parameter "studyInstanceUid" must be a DICOM UID: digits separated by dots (see /docs).'],
    [`/studies/1.${'2'.repeat(70)}`, 'The path parameter "studyInstanceUid" must be at most 64 characters long (see /docs).'],
    ['/predictions?cursor=a.b', 'The query parameter "cursor" must be the `next` of the previous page, as it was given (see /docs).'],
    ['/audit-events?code=queue_full', 'The query parameter "code" must be an error code in capitals (QUEUE_FULL) (see /docs).'],
    ['/predictions/nope/overlay.png', 'The path parameter "id" must be a UUID (see /docs).'],
    ['/predictions?limit=abc', 'The query parameter "limit" must be a whole number (see /docs).'],
    ['/predictions?limit=0', 'The query parameter "limit" must be at least 1 (see /docs).'],
    ['/predictions?limit=500', 'The query parameter "limit" must be at most 200 (see /docs).'],
    ['/predictions?since=yesterday', 'The query parameter "since" must be a date and time in ISO 8601 with a time zone (2026-12-05T08:00:00Z) (see /docs).'],
    ['/predictions?prediction=Maybe', 'The query parameter "prediction" must be one of Normal, Stone (see /docs).'],
    ['/studies/1.2.3?mine=maybe', 'The query parameter "mine" must be true or false (see /docs).']
  ]) {
    const res = await app.inject({ method: 'GET', url })
    t.same(res.json(), { statusCode: 400, code: 'VALIDATION_ERROR', error: 'Bad Request', message }, url)
  }
})

t.test('a parameter a route does not take is named as a query string\'s', async (t) => {
  const app = await build(t, {}, { waitForModel: false })
  const res = await app.inject({ method: 'GET', url: '/predictions?foo=1' })
  t.equal(res.json().message, 'The query string has a parameter this route does not take: "foo" (see /docs).')
})
