import { open, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { sniffFormat } from '../inference/sniff.js'

/** Enough bytes to recognise JPEG, PNG and the DICOM preamble + "DICM". */
const SNIFF_BYTES = 132

async function looksLikeInput (path: string): Promise<boolean> {
  const handle = await open(path, 'r')
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(SNIFF_BYTES), 0, SNIFF_BYTES, 0)
    return sniffFormat(buffer.subarray(0, bytesRead)) !== undefined
  } finally {
    await handle.close()
  }
}

async function walk (folder: string, found: string[]): Promise<void> {
  const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))
  for (const entry of entries) {
    const path = join(folder, entry.name)
    if (entry.isDirectory()) await walk(path, found)
    // Folder contents are chosen by content, not extension: DICOM exports often have no extension at all.
    else if (entry.isFile() && await looksLikeInput(path)) found.push(path)
  }
}

/**
 * The files to classify, in a stable order: files named on the command line are always taken (so an
 * unreadable or unsupported one is reported, not skipped); folders are searched recursively for JPEG,
 * PNG and DICOM files. A path that does not exist is returned too and fails with READ_ERROR.
 */
export async function collectFiles (paths: string[]): Promise<string[]> {
  const found: string[] = []
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined)
    if (info?.isDirectory() === true) await walk(path, found)
    else found.push(path)
  }
  return found
}
