// The package's release ships no declarations (its package.json names a file it does not contain): the part used here.
declare module 'jpeg-lossless-decoder-js' {
  export class Decoder {
    xDim: number
    yDim: number
    numComp: number
    precision: number | undefined
    getPreviousX (compOffset?: number): number
    getPreviousY (compOffset?: number): number
    select7 (compOffset?: number): number
    decode (buffer?: ArrayBuffer, offset?: number, length?: number, numBytes?: number): Uint8Array | Uint16Array
  }
}
