import { open, readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { sniffFormat } from '../inference/sniff.js'

/** Enough bytes to recognise JPEG, PNG and DICOM (the preamble + "DICM", or a data set's first element). */
const SNIFF_BYTES = 132

/** Names that say "image or DICOM": such a file is classified, and reported when it fails, whatever it holds. */
const INPUT_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.dcm', '.dicom', '.ima'])

/** Why a file found in a folder was left out; the summary line counts them by reason. */
export type SkipReason = 'not JPEG, PNG or DICOM' | 'hidden' | 'DICOMDIR' | 'not a file'

export interface CollectedFiles {
  /** The files to classify, in a stable order. */
  files: string[]
  /** Files found in folders and left out, by reason. */
  skipped: Map<SkipReason, number>
}

async function readHead (path: string): Promise<Buffer> {
  const handle = await open(path, 'r')
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(SNIFF_BYTES), 0, SNIFF_BYTES, 0)
    return buffer.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

function extensionOf (name: string): string {
  const dot = name.lastIndexOf('.')
  return dot === -1 ? '' : name.slice(dot).toLowerCase()
}

/**
 * Folder contents are chosen by content first (DICOM exports often have no extension), then by name: a file
 * named like an image or DICOM file is taken even when its content is not, so that a broken export is
 * reported, never silently left out. A file named only `.jpg` is an export with an empty name, not a dotfile.
 */
async function choose (path: string, name: string): Promise<true | SkipReason> {
  // A DICOMDIR is a Part 10 file (preamble and all) that indexes the others; it holds no image.
  if (name.toUpperCase() === 'DICOMDIR') return 'DICOMDIR'
  const info = await stat(path).catch(() => undefined)
  // Links to folders are not followed (no cycles); sockets and FIFOs are never opened (a FIFO would block).
  if (info !== undefined && !info.isFile()) return 'not a file'
  const head = info === undefined ? undefined : await readHead(path).catch(() => undefined)
  if (head !== undefined && sniffFormat(head) !== undefined) return true
  // Dotfiles: .DS_Store, and macOS's AppleDouble "._slice.dcm" companions, which are not the slice.
  if (name.startsWith('.') && !INPUT_EXTENSIONS.has(name.toLowerCase())) return 'hidden'
  // A file that could not be read at all (permissions, a broken link) is taken: it is reported as READ_ERROR.
  if (INPUT_EXTENSIONS.has(extensionOf(name)) || head === undefined) return true
  return 'not JPEG, PNG or DICOM'
}

async function walk (folder: string, collected: CollectedFiles): Promise<void> {
  const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))
  for (const entry of entries) {
    const path = join(folder, entry.name)
    if (entry.isDirectory()) {
      await walk(path, collected)
      continue
    }
    const choice = await choose(path, entry.name)
    if (choice === true) collected.files.push(path)
    else collected.skipped.set(choice, (collected.skipped.get(choice) ?? 0) + 1)
  }
}

/**
 * The files to classify: files named on the command line are always taken (so an unreadable or unsupported
 * one is reported, not skipped); folders are searched recursively (see `choose`). A path that does not exist
 * is returned too and fails with READ_ERROR.
 */
export async function collectFiles (paths: string[]): Promise<CollectedFiles> {
  const collected: CollectedFiles = { files: [], skipped: new Map() }
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined)
    if (info?.isDirectory() === true) await walk(path, collected)
    else collected.files.push(path)
  }
  return collected
}

/**
 * The bytes of one file to classify, or why it cannot be read. Only a regular file is read: a FIFO named on the
 * command line (a process substitution, a pipe left in an export) blocked the CLI forever, and so did /dev/zero,
 * which never ends; folders already skip them (`choose`).
 */
export async function readInput (path: string): Promise<Buffer | string> {
  const info = await stat(path).catch((error: unknown) => unreadable(path, error))
  if (typeof info === 'string') return info
  if (!info.isFile()) return `${path} is not a regular file (a FIFO, device or socket is never read: it could block or never end)`
  return await readFile(path).catch((error: unknown) => unreadable(path, error))
}

/** Why a path cannot be read, from the system's error code: a mistyped path and a permission are fixed differently. */
function unreadable (path: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code
  const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code
  return `cannot read ${path}${why === undefined ? '' : `: ${why}`}`
}
