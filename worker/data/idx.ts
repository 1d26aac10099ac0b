/** IDX files (MNIST / Fashion-MNIST format), optionally gzipped: magic, dimensions, then uint8 data. */
import { DataError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function readIdx(file: string): IdxArray {
  if (!fs.existsSync(file)) throw new DataError(`IDX file not found: ${file}`);
  let buf: Buffer = fs.readFileSync(file);
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw new DataError(`${file}: corrupt gzip data (${(e as Error).message})`);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new DataError(`${file}: not an IDX file (bad magic)`);
  if (buf[2] !== 0x08) throw new DataError(`${file}: IDX element type 0x${buf[2].toString(16)} is not uint8`);
  const nd = buf[3];
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const start = 4 + 4 * nd;
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length < start + size)
    throw new DataError(`${file}: truncated (${buf.length - start} of ${size} data bytes)`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + start, size) };
}
