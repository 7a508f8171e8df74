import { isIP } from 'node:net'

/**
 * TRUST_PROXY: `false`, the socket's address is the client; `true`, every proxy is trusted and the client is the first
 * X-Forwarded-For address, which the client itself chose unless the proxy replaces the header (HAProxy here does);
 * or the proxies' addresses and CIDR ranges, comma-separated: only a request from them is read through, and the client
 * is the nearest address in X-Forwarded-For that is not one of them, the one a proxy that appends to the header wrote
 * (ingress-nginx with compute-full-forwarded-for). No hop count: Fastify trusts no one for a number, since it cannot
 * tell a proxy from a client that sends the header itself. Undefined for anything else.
 */
export function trustProxyOf (value: string): boolean | string[] | undefined {
  const text = value.trim()
  if (text === 'false' || text === 'true') return text === 'true'
  const addresses = text.split(',').map((address) => address.trim())
  return addresses.every(isAddressOrRange) ? addresses : undefined
}

function isAddressOrRange (address: string): boolean {
  const [ip, prefix, ...rest] = address.split('/')
  const family = isIP(ip)
  return family !== 0 && rest.length === 0 && (prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)))
}
