import { connect } from 'node:net'
import { BOUNDARY, encodeMultipart } from '../hostile/request-cases.js'

export interface SplitUpload {
  /** Resolves once the server has parsed the headers (its `100 Continue`): the request is accepted. */
  accepted: Promise<void>
  finish: () => void
  answer: Promise<{ status: number, body: string }>
}

/**
 * A POST /predict upload whose body is sent in two halves: the first once accepted, the second when `finish`
 * is called. Between the two the request is in flight, which is where shutdown tests send their signal.
 */
export function splitUpload (port: number, image: Buffer, host = '127.0.0.1'): SplitUpload {
  const body = encodeMultipart([{ name: 'file', filename: 'slice.jpg', contentType: 'image/jpeg', data: image }])
  const socket = connect(port, host)
  const chunks: Buffer[] = []
  const half = Math.floor(body.length / 2)
  const accepted = new Promise<void>((resolve) => {
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      if (Buffer.concat(chunks).toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n')) resolve()
    })
  })
  socket.write(`POST /predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nExpect: 100-continue\r\n` +
    `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${body.length}\r\n\r\n`)
  void accepted.then(() => socket.write(body.subarray(0, half)))
  const answer = new Promise<{ status: number, body: string }>((resolve) => {
    socket.on('error', () => {})
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8').replace('HTTP/1.1 100 Continue\r\n\r\n', '')
      const [head, ...rest] = text.split('\r\n\r\n')
      resolve({ status: Number(head.split(' ')[1]), body: rest.join('\r\n\r\n') })
    })
  })
  return { accepted, finish: () => socket.write(body.subarray(half)), answer }
}
