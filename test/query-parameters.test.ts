import { randomUUID } from 'node:crypto'
import t from 'tap'
import { build, ctKidneyImage, multipart } from './helper.js'

// A query parameter a route does not take is refused, not dropped: `GET /audit-events?caller=api-key:bob` answered
// every caller's events, which a records:read-all auditor could take for Bob's alone.
t.test('every route with a query string refuses a parameter it does not take, naming it, and still takes its own', async (t) => {
  const app = await build(t, {}, { waitForModel: false })
  const id = randomUUID()
  for (const [url, unknown] of [
    ['/audit-events?caller=api-key:bob', 'caller'],
    ['/predictions?status=401&limit=5', 'status'],
    ['/predictions?constructor=1', 'constructor'],
    [`/studies/1.2.3?mine=true&caller=x`, 'caller'],
    [`/predictions/${id}/overlay.png?heatmap=false&size=2`, 'size']
  ]) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 400, url)
    t.same(res.json(), {
      statusCode: 400,
      code: 'VALIDATION_ERROR',
      error: 'Bad Request',
      message: `The query string has a parameter this route does not take: "${unknown}" (see /docs).`
    }, url)
  }
  for (const url of ['/audit-events?code=QUEUE_FULL&limit=5', '/predictions?prediction=Stone&limit=5', '/studies/1.2.3?mine=true', `/predictions/${id}/overlay.png?heatmap=false`]) {
    const res = await app.inject({ method: 'GET', url })
    t.not(res.json().code, 'VALIDATION_ERROR', `${url}: its own parameters pass (${res.statusCode} ${res.json().code as string})`)
  }
})

t.test('the upload routes take no query parameter: one meant as a setting is refused, not ignored', async (t) => {
  const app = await build(t, {}, { waitForModel: false })
  const slice = await ctKidneyImage('test/stone')
  const related = { headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' }, payload: '--x--\r\n' }
  for (const [url, request] of [
    ['/predict?threshold=0.1', multipart([{ name: 'file', filename: 'slice.jpg', contentType: 'image/jpeg', data: slice }])],
    ['/predict/batch?threshold=0.1', multipart([{ name: 'files', filename: 'slice.jpg', contentType: 'image/jpeg', data: slice }])],
    ['/studies?x=1', related],
    ['/studies/1.2.3?x=1', related]
  ] as const) {
    const res = await app.inject({ method: 'POST', url, ...request })
    t.equal(res.json().code, 'VALIDATION_ERROR', `${url}: ${res.statusCode} ${res.json().message as string}`)
    t.match(res.json().message, /has a parameter this route does not take: "(threshold|x)"/, url)
  }
})

t.test('the status, model, metrics and health routes ignore a query string: a monitor\'s cache-buster does not fail a probe', async (t) => {
  const app = await build(t)
  for (const url of ['/', '/model', '/metrics', '/health/live', '/health/ready']) {
    const plain = await app.inject({ method: 'GET', url })
    const busted = await app.inject({ method: 'GET', url: `${url}?_=1733400000&check=deep` })
    t.equal(busted.statusCode, plain.statusCode, `${url}?_=…: ${busted.statusCode}`)
    t.equal(busted.statusCode, 200, url)
  }
})
