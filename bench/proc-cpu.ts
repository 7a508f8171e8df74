import { readFile, readdir } from 'node:fs/promises'

/** A clock tick (USER_HZ, which Linux fixes at 100 per second on every architecture Node runs on), in ms. */
const MS_PER_TICK = 10

/** user + system CPU of a process (all its threads) or of one thread (`/proc/<pid>/task/<tid>`), in ms; `children`: plus its waited-for children's. */
async function cpuMsOf (statPath: string, children = false): Promise<number> {
  // fields 14-17 of stat (utime, stime, cutime, cstime) in clock ticks; the name before them may hold spaces
  const fields = (await readFile(statPath, 'utf8')).split(') ')[1].split(' ')
  const ticks = Number(fields[11]) + Number(fields[12]) + (children ? Number(fields[13]) + Number(fields[14]) : 0)
  return ticks * MS_PER_TICK
}

export async function processCpuMs (pid: number): Promise<number> {
  return await cpuMsOf(`/proc/${pid}/stat`)
}

/** CPU ms of each thread of `pid`, keyed by tid; `names` gets each thread's name. */
export async function threadCpuMs (pid: number, names?: Map<number, string>): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), await cpuMsOf(`/proc/${pid}/task/${tid}/stat`))
      names?.set(Number(tid), (await readFile(`/proc/${pid}/task/${tid}/comm`, 'utf8')).trim())
    } catch {} // the thread ended meanwhile
  }
  return out
}

/**
 * CPU ms of the PostgreSQL server listening on `port`: the postmaster, its children (backends, WAL writer,
 * checkpointer, ...) and the children that have exited.
 */
export async function postgresCpuMs (port: number): Promise<number> {
  const processes: Array<{ pid: number, ppid: number, command: string }> = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8')
      const command = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replaceAll('\0', ' ')
      processes.push({ pid: Number(entry), ppid: Number(stat.split(') ')[1].split(' ')[1]), command })
    } catch {} // the process ended meanwhile
  }
  const postmaster = processes.find((p) => p.command.includes('postgres') && p.command.includes(`-p ${port}`))
  if (postmaster === undefined) throw new Error(`no PostgreSQL server on port ${port}`)
  let ms = await cpuMsOf(`/proc/${postmaster.pid}/stat`, true)
  for (const child of processes.filter((p) => p.ppid === postmaster.pid)) ms += await cpuMsOf(`/proc/${child.pid}/stat`).catch(() => 0)
  return ms
}
