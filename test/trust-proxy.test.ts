import t from 'tap'
import { loadConfig } from '../plugins/app/config.js'
import { build } from './helper.js'

// TRUST_PROXY decides whose address a request's rate limit budget (and log line) belongs to, behind a gateway.

t.test('TRUST_PROXY reads false, true, or the proxies\' addresses and CIDR ranges; anything else stops start-up', async (t) => {
  t.equal(loadConfig({}).trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  // on the old code (a boolean) every list was refused: 'Expected boolean'
  t.same(loadConfig({ TRUST_PROXY: ' 10.42.0.0/16, 127.0.0.1,fd00::/8 ' }).trustProxy, ['10.42.0.0/16', '127.0.0.1', 'fd00::/8'])
  for (const value of ['1', 'yes', '10.42.0.0/33', '10.42.0.0/16/2', 'fd00::/129', 'ingress.local', '10.0.0.1,']) {
    t.throws(() => loadConfig({ TRUST_PROXY: value }), /^Invalid environment variable TRUST_PROXY=".*": give false, true, or the proxies' addresses/, value)
  }
})

t.test('with the gateway\'s addresses, a client is the address the gateway wrote, whatever it sent itself', async (t) => {
  // app.inject's requests come from 127.0.0.1, the gateway here; one request a minute per client
  const budget = { rateLimit: { max: 1, windowMs: 60_000 } }
  const get = async (app: Awaited<ReturnType<typeof build>>, forwardedFor: string, remoteAddress?: string): Promise<number> =>
    (await app.inject({ method: 'GET', url: '/model', headers: { 'x-forwarded-for': forwardedFor }, ...(remoteAddress === undefined ? {} : { remoteAddress }) })).statusCode

  const listed = await build(t, { config: { ...budget, trustProxy: ['127.0.0.1'] } })
  // a gateway that appends (ingress-nginx with compute-full-forwarded-for): the client's own value stays on the left
  t.equal(await get(listed, '198.51.100.7, 203.0.113.5'), 200)
  t.equal(await get(listed, '198.51.100.8, 203.0.113.5'), 429, 'a value of its own buys the client no fresh budget')
  t.equal(await get(listed, '203.0.113.6'), 200, 'another client has its own')
  // a request that does not come from the gateway is its sender's, whatever it says it forwards
  t.equal(await get(listed, '203.0.113.7', '192.0.2.9'), 200)
  t.equal(await get(listed, '203.0.113.8', '192.0.2.9'), 429, 'not from a listed proxy: X-Forwarded-For is not read')

  // TRUST_PROXY=true trusts every hop: behind a gateway that appends, the client picks its own budget
  const everyone = await build(t, { config: { ...budget, trustProxy: true } })
  t.equal(await get(everyone, '198.51.100.7, 203.0.113.5'), 200)
  t.equal(await get(everyone, '198.51.100.8, 203.0.113.5'), 200, 'true: the first address counts, so use true only behind a gateway that replaces the header')
})
