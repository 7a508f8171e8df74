/**
 * Why a CORS_ORIGINS entry matches no browser, or undefined when it is an origin ('*' included). plugins/external/cors.ts
 * compares the entries with a request's Origin header as they are, and a browser sends an origin alone: scheme,
 * lower-case host, a port only when it is not the scheme's default, no path. An entry written otherwise (a trailing
 * slash, https://viewer.hospital.example:443, an upper-case host, no scheme) was taken, and every call from that page
 * then failed in the browser as a CORS error while the operator saw the page listed.
 */
export function originProblem (entry: string): string | undefined {
  if (entry === '*') return undefined
  let origin = 'null'
  try {
    const url = new URL(entry)
    // A scheme the URL standard does not know (capacitor://localhost, app://viewer) has an opaque origin, 'null', yet
    // the web views of mobile and desktop viewers send it as scheme and host: taken as written.
    origin = url.origin === 'null' && url.host !== '' ? `${url.protocol}//${url.host}` : url.origin
  } catch {}
  if (origin === 'null') return `${JSON.stringify(entry)} is no origin: give scheme and host as a browser sends them (https://viewer.hospital.example)`
  if (origin !== entry) return `${JSON.stringify(entry)} is not written as a browser sends its origin, so no request would match it: write ${origin}`
  return undefined
}
