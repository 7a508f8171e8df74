import { execFile } from 'node:child_process'
import { chown, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from '../../bench/processes.js'

const run = promisify(execFile)
const SUPERUSER = 'kidney'

/** A throwaway PostgreSQL server on 127.0.0.1: its own cluster in a temporary directory, gone after `destroy`. */
export interface PostgresServer {
  port: number
  /** postgres://kidney@127.0.0.1:<port>/<database> (trust authentication: the cluster listens on loopback only). */
  url: (database?: string) => string
  /** A new empty database; returns its URL. */
  createDatabase: (name: string) => Promise<string>
  /** pg_ctl stop -m fast: connections are cut, as when a server goes away. */
  stop: () => Promise<void>
  start: () => Promise<void>
  destroy: () => Promise<void>
}

/** The newest Debian server binaries (scripts/install-postgres.sh installs them; `npm test`'s pretest runs it). */
async function binDir (): Promise<string> {
  const versions = await readdir('/usr/lib/postgresql').catch(() => [] as string[])
  const newest = versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))[0]
  if (newest === undefined) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql: run `bash scripts/install-postgres.sh`')
  return `/usr/lib/postgresql/${newest}/bin`
}

/**
 * PostgreSQL refuses to run as root, and CI runs as root: there the cluster belongs to Debian's `postgres` user (created
 * by the package) and every server command runs through runuser; an unprivileged developer runs them directly.
 */
async function serverUser (): Promise<{ name: string, uid: number, gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined
  for (const name of ['postgres', 'nobody']) {
    try {
      const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])])
      return { name, uid: Number(uid.stdout), gid: Number(gid.stdout) }
    } catch {}
  }
  throw new Error('running as root, but neither the postgres nor the nobody user exists to run PostgreSQL as')
}

/**
 * Starts a cluster (initdb, then pg_ctl on a free port, socket in its own directory). `durable: false` (tests) turns
 * fsync off: the data is thrown away anyway. The benchmark keeps the server's durable defaults.
 */
export async function startPostgres ({ durable = false } = {}): Promise<PostgresServer> {
  const bin = await binDir()
  const user = await serverUser()
  const dir = await mkdtemp(join(tmpdir(), 'kidney-pg-'))
  if (user !== undefined) await chown(dir, user.uid, user.gid)
  const as = async (command: string, args: string[]): Promise<void> => {
    const [file, argv] = user === undefined ? [join(bin, command), args] : ['runuser', ['-u', user.name, '--', join(bin, command), ...args]]
    await run(file, argv, { cwd: dir, timeout: 120_000 })
  }
  const data = join(dir, 'data')
  const port = await freePort()
  const settings = [`-p ${port}`, `-k ${dir}`, "-c listen_addresses='127.0.0.1'", '-c max_connections=100',
    ...(durable ? [] : ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'])].join(' ')
  const start = async (): Promise<void> => await as('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', settings, '-w', '-t', '60', 'start'])
  const stop = async (): Promise<void> => await as('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop'])
  const destroy = async (): Promise<void> => {
    await stop().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await as('initdb', ['-D', data, '-U', SUPERUSER, '--auth=trust', '-E', 'UTF8', '--no-locale', ...(durable ? [] : ['--no-sync'])])
    await start()
  } catch (error) {
    await destroy()
    throw error
  }
  const url = (database = 'postgres'): string => `postgres://${SUPERUSER}@127.0.0.1:${port}/${database}`
  return {
    port,
    url,
    createDatabase: async (name) => {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name} is not a plain identifier`)
      const client = new pg.Client({ connectionString: url() })
      await client.connect()
      try {
        await client.query(`CREATE DATABASE ${name}`)
      } finally {
        await client.end()
      }
      return url(name)
    },
    stop,
    start,
    destroy
  }
}
