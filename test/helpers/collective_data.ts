/** Deterministic test data shared by the collective workers and tests: every rank can regenerate every other's. */

/** float32-representable value number i of rank `rank`'s buffer of `size` elements; magnitudes from 1/16 to 16. */
export function value(rank: number, size: number, i: number): number {
  let x = (Math.imul(i, 0x9e3779b1) ^ Math.imul(rank + 1, 0x85ebca6b) ^ Math.imul(size, 0xc2b2ae35)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  const mant = (x & 0xffff) / 0x10000 - 0.5; // [-0.5, 0.5)
  return Math.fround(mant * SCALE[(x >>> 16) % 9]);
}

/** 2^(exp + 1) for exp = -4..4, looked up: `**` made filling 17.6M floats take seconds */
const SCALE = Array.from({ length: 9 }, (_, k) => 2 ** (k - 4 + 1));

export function fill(buf: Float32Array, rank: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = value(rank, buf.length, i);
}
