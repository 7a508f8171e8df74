import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'

export interface ReceivedRequest { at: number, method?: string, path: string, headers: IncomingMessage['headers'], body: any }

/**
 * A local FHIR server for the push tests: it answers each request with the next status of `statuses` (the last one
 * repeats), a 201 with a Location as a FHIR server does, and keeps what it received; closed with the test.
 */
export async function fhirStub (t: Test, statuses: number[] = [201]): Promise<{ url: string, received: ReceivedRequest[] }> {
  const received: ReceivedRequest[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      received.push({ at: Date.now(), method: request.method, path: request.url ?? '', headers: request.headers, body: JSON.parse(Buffer.concat(chunks).toString()) })
      const status = statuses[Math.min(received.length - 1, statuses.length - 1)]
      if (status === 201) response.setHeader('location', `/fhir/DiagnosticReport/${received.length}/_history/1`)
      response.writeHead(status, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(status === 201 ? { resourceType: 'DiagnosticReport' } : { resourceType: 'OperationOutcome' }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(async () => await new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`, received }
}

/** Polls `condition` every 100 ms for up to a minute. */
export async function until (condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (await condition()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}
