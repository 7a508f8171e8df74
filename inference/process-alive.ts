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
