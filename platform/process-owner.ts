import { readFile, readlink } from 'node:fs/promises'
import { hostname } from 'node:os'

/**
 * Which process owns a file left on a shared volume (a Keras conversion's work folder, the embedded database's
 * lock), and whether that process can be asked if it still runs.
 */
export interface ProcessOwner { scope: string, pid: number }

/**
 * Whether a process with this pid exists in this process's pid namespace (signal 0 checks without signalling); one
 * of another user's exists too (EPERM).
 */
export function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

let scope: Promise<string> | undefined
/**
 * Where a pid means something: a pid names a process only in its pid namespace on its machine. Two containers on one
 * volume both run node as pid 1, and a pid written on another host names nothing here. The boot id tells the machine
 * (the host name, where there is none), the namespace link the pid namespace; both are Linux's. The host name comes
 * first: it is what a message names.
 */
export async function pidScope (): Promise<string> {
  scope ??= Promise.all([
    readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => ''),
    readlink('/proc/self/ns/pid').catch(() => '')
  ]).then(([boot, namespace]) => `${hostname()} ${boot.trim()} ${namespace}`)
  return await scope
}

/**
 * Whether `scope` (pidScope's) is this machine's: the same boot id, or the same host name where there is none. Only
 * there is a file's mtime written by the clock we read.
 */
export async function sameMachine (scope: string): Promise<boolean> {
  const [host, boot] = scope.split(' ')
  const [ourHost, ourBoot] = (await pidScope()).split(' ')
  return boot !== '' && ourBoot !== '' ? boot === ourBoot : host === ourHost
}

/** This process as an owner file holds it: `{ scope, pid }`. */
export async function thisProcess (): Promise<ProcessOwner> {
  return { scope: await pidScope(), pid: process.pid }
}

/** `{ scope, pid }` read back from an owner file's text; undefined for anything else. */
export function parseOwner (text: string): ProcessOwner | undefined {
  try {
    const owner = JSON.parse(text) as { scope?: unknown, pid?: unknown }
    if (typeof owner.scope === 'string' && Number.isInteger(owner.pid) && (owner.pid as number) > 0) return owner as ProcessOwner
  } catch {}
  return undefined
}

/**
 * Whether `owner` is known to have ended: it ran in this scope and its pid is not alive (or is this process's own, a
 * former process given the same pid, as a restarted container's node always is). Undefined where it cannot be asked:
 * another container or host.
 */
export async function ownerGone (owner: ProcessOwner): Promise<boolean | undefined> {
  if (owner.scope !== await pidScope()) return undefined
  return owner.pid === process.pid || !processAlive(owner.pid)
}
