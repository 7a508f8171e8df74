/** A file chosen or dropped, with the path it had inside a dropped or chosen folder (its name otherwise). */
export interface PickedFile {
  file: File
  path: string
}

/** Hidden files (.DS_Store, AppleDouble ._ companions) and DICOMDIR indexes are never slices: not sent. */
export function isCandidate (path: string): boolean {
  const name = path.split('/').at(-1) ?? path
  return !name.startsWith('.') && name.toUpperCase() !== 'DICOMDIR'
}

/** The files of an <input type=file> (with `webkitdirectory`, every file of the folder, with its relative path). */
export function fromInput (input: HTMLInputElement): PickedFile[] {
  return Array.from(input.files ?? [], (file) => ({ file, path: file.webkitRelativePath !== '' ? file.webkitRelativePath : file.name }))
}

/** The files of a drop, folders walked recursively (File and Directory Entries API, in every current browser). */
export async function fromDrop (transfer: DataTransfer): Promise<PickedFile[]> {
  const entries = Array.from(transfer.items, (item) => item.webkitGetAsEntry()).filter((entry): entry is FileSystemEntry => entry !== null)
  if (entries.length === 0) return Array.from(transfer.files, (file) => ({ file, path: file.name }))
  const walked = await Promise.all(entries.map(walk))
  return walked.flat()
}

async function walk (entry: FileSystemEntry): Promise<PickedFile[]> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject))
    return [{ file, path: entry.fullPath.replace(/^\//, '') }]
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader()
  const children: FileSystemEntry[] = []
  // readEntries returns the folder in chunks (100 in Chromium) until it returns none
  for (;;) {
    const chunk = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject))
    if (chunk.length === 0) break
    children.push(...chunk)
  }
  const walked = await Promise.all(children.map(walk))
  return walked.flat().sort((a, b) => a.path.localeCompare(b.path))
}
