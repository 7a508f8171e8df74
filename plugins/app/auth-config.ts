import { createHash, createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'

export type AuthMode = 'none' | 'api-key' | 'jwt' | 'any'

/** The scope a caller needs for /predict*; any authenticated caller may use the other protected routes. */
export const PREDICT_SCOPE = 'predict'

export interface ApiKey {
  /** Names the caller in logs; never the key itself. */
  name: string
  /** Only the hash is kept, so comparisons run over equal-length digests in constant time. */
  sha256: Buffer
  scopes: string[]
}

export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256'

export interface JwtVerification {
  algorithm: JwtAlgorithm
  /** HS256: the shared secret; RS256/ES256: the PEM public key. */
  key: string
  issuer: string
  audience: string
  clockToleranceS: number
  /** Claim name or dotted path holding the token's scopes; undefined: `scope`, then `scp`. */
  scopeClaim?: string
}

export interface AuthConfig {
  mode: AuthMode
  apiKeyHeader: string
  apiKeys: ApiKey[]
  jwt?: JwtVerification
  /** Whether /docs (Swagger UI and the OpenAPI document) stays reachable without credentials. */
  docsPublic: boolean
  /** Whether /metrics stays reachable without credentials. */
  metricsPublic: boolean
}

export const AUTH_OFF: AuthConfig = { mode: 'none', apiKeyHeader: 'x-api-key', apiKeys: [], docsPublic: true, metricsPublic: true }

export class AuthConfigError extends Error {}

const MIN_API_KEY_LENGTH = 16
const MIN_HS256_SECRET_BYTES = 32

export function sha256 (text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

/**
 * API keys, one per line or comma-separated: `name:key` or `name:key:scope scope...` (default scope: predict).
 * Names and keys therefore cannot contain ':' or ','; scopes cannot contain ',' (they may contain ':', as in
 * `records:read-all`: everything after the second ':' is the scope list).
 */
export function parseApiKeys (text: string, source: string): ApiKey[] {
  const entries = text.split(/[\n,]/).map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
  const keys = entries.map((entry, index) => {
    const [name, key, ...scopeParts] = entry.split(':')
    const scopes = scopeParts.length === 0 ? undefined : scopeParts.join(':')
    if (name === undefined || name === '' || key === undefined) {
      throw new AuthConfigError(`${source}: entry ${index + 1} must be "name:key" or "name:key:scope scope"`)
    }
    if (key.length < MIN_API_KEY_LENGTH) {
      throw new AuthConfigError(`${source}: the key of "${name}" is shorter than ${MIN_API_KEY_LENGTH} characters`)
    }
    const scopeList = (scopes ?? PREDICT_SCOPE).split(/\s+/).filter((scope) => scope !== '')
    return { name, sha256: sha256(key), scopes: scopeList }
  })
  const names = new Set(keys.map((k) => k.name))
  if (names.size !== keys.length) throw new AuthConfigError(`${source}: API key names must be unique`)
  // One key under two names was the last name's (matchApiKey keeps the last match), with that entry's scopes: the
  // first entry's name and scopes never applied, without a word.
  const holders = new Map<string, string>()
  for (const key of keys) {
    const earlier = holders.get(key.sha256.toString('hex'))
    if (earlier !== undefined) throw new AuthConfigError(`${source}: "${earlier}" and "${key.name}" have the same key; give each caller its own`)
    holders.set(key.sha256.toString('hex'), key.name)
  }
  return keys
}

/** The secrets read by `secretFrom`, each also as a `_FILE` twin. */
export const SECRET_VARIABLES = {
  apiKeys: 'AUTH_API_KEYS', jwtSecret: 'AUTH_JWT_SECRET', jwtPublicKey: 'AUTH_JWT_PUBLIC_KEY', databaseUrl: 'DATABASE_URL',
  fhirServerToken: 'FHIR_SERVER_TOKEN'
} as const

/** A secret given inline (`VAR`) or as a file (`VAR_FILE`, e.g. a mounted Kubernetes/Docker secret). */
export function secretFrom (env: NodeJS.ProcessEnv, name: string): string | undefined {
  const inline = env[name]
  const file = env[`${name}_FILE`]
  if (inline !== undefined && inline !== '' && file !== undefined && file !== '') {
    throw new AuthConfigError(`Set only one of ${name} and ${name}_FILE`)
  }
  if (file !== undefined && file !== '') {
    try {
      return readFileSync(file, 'utf8').trim()
    } catch {
      throw new AuthConfigError(`${name}_FILE: cannot read ${file}`)
    }
  }
  return inline === '' ? undefined : inline
}

function algorithmOfPublicKey (pem: string, source: string): JwtAlgorithm {
  let type: string | undefined
  try {
    const key = createPublicKey(pem)
    type = key.asymmetricKeyType
    if (type === 'ec' && key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new AuthConfigError(`${source}: ES256 needs a P-256 key`)
    }
  } catch (error) {
    if (error instanceof AuthConfigError) throw error
    throw new AuthConfigError(`${source}: not a PEM public key`)
  }
  if (type === 'rsa') return 'RS256'
  if (type === 'ec') return 'ES256'
  throw new AuthConfigError(`${source}: only RSA (RS256) and P-256 EC (ES256) public keys are supported`)
}

/**
 * Headers that HTTP, clients or proxies fill with something else than an API key, or that the logs show (x-request-id):
 * with one of them as AUTH_API_KEY_HEADER the service started and then answered 401 to every request.
 */
const HEADERS_NOT_FOR_KEYS = ['host', 'content-type', 'content-length', 'transfer-encoding', 'connection', 'cookie', 'accept',
  'accept-encoding', 'user-agent', 'expect', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']

export interface AuthEnv {
  mode: AuthMode
  apiKeyHeader: string
  issuer?: string
  audience?: string
  clockToleranceS: number
  scopeClaim?: string
  docsPublic: boolean
  metricsPublic: boolean
}

/** Resolves keys and secrets for the chosen mode and checks that the mode has what it needs. */
export function loadAuthConfig (env: NodeJS.ProcessEnv, settings: AuthEnv): AuthConfig {
  const config: AuthConfig = { ...AUTH_OFF, mode: settings.mode, apiKeyHeader: settings.apiKeyHeader.toLowerCase(), docsPublic: settings.docsPublic, metricsPublic: settings.metricsPublic }
  if (settings.mode === 'none') return config

  if (settings.mode === 'api-key' || settings.mode === 'any') {
    const taken = HEADERS_NOT_FOR_KEYS.includes(config.apiKeyHeader) || (settings.mode === 'any' && config.apiKeyHeader === 'authorization')
    if (taken) {
      throw new AuthConfigError(`AUTH_API_KEY_HEADER=${settings.apiKeyHeader}: that header carries something else in every request` +
        `${config.apiKeyHeader === 'authorization' ? ' (with AUTH_MODE=any, the bearer tokens)' : ''}, so no request could authenticate; use another, e.g. x-api-key`)
    }
    const text = secretFrom(env, SECRET_VARIABLES.apiKeys)
    config.apiKeys = text === undefined ? [] : parseApiKeys(text, 'AUTH_API_KEYS')
    if (config.apiKeys.length === 0 && settings.mode === 'api-key') {
      throw new AuthConfigError('AUTH_MODE=api-key needs AUTH_API_KEYS or AUTH_API_KEYS_FILE')
    }
  }
  if (settings.mode === 'jwt' || settings.mode === 'any') {
    const secret = secretFrom(env, SECRET_VARIABLES.jwtSecret)
    const publicKey = secretFrom(env, SECRET_VARIABLES.jwtPublicKey)
    if (secret !== undefined && publicKey !== undefined) {
      throw new AuthConfigError('Set only one of AUTH_JWT_SECRET(_FILE) and AUTH_JWT_PUBLIC_KEY(_FILE)')
    }
    const key = secret ?? publicKey
    if (key === undefined) {
      if (settings.mode === 'jwt') throw new AuthConfigError('AUTH_MODE=jwt needs AUTH_JWT_SECRET(_FILE) or AUTH_JWT_PUBLIC_KEY(_FILE)')
    } else {
      if (secret !== undefined && Buffer.byteLength(secret) < MIN_HS256_SECRET_BYTES) {
        throw new AuthConfigError(`AUTH_JWT_SECRET must be at least ${MIN_HS256_SECRET_BYTES} bytes for HS256`)
      }
      if (settings.issuer === undefined || settings.audience === undefined) {
        throw new AuthConfigError('JWT needs AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE')
      }
      config.jwt = {
        algorithm: secret !== undefined ? 'HS256' : algorithmOfPublicKey(key, 'AUTH_JWT_PUBLIC_KEY'),
        key,
        issuer: settings.issuer,
        audience: settings.audience,
        clockToleranceS: settings.clockToleranceS,
        scopeClaim: settings.scopeClaim
      }
    }
  }
  if (config.apiKeys.length === 0 && config.jwt === undefined) {
    throw new AuthConfigError('AUTH_MODE=any needs API keys, a JWT key, or both')
  }
  return config
}
