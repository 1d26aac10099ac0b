/**
 * float32 <-> IEEE half conversion for `allreduce_dtype: float16` on the wire.
 * Node 20 has no Float16Array, so this is done by hand: a 64K-entry table for half -> float (one load per
 * element) and the branch-light round-to-nearest-even bit trick (F. Giesen's float_to_half_fast3_rtne) for
 * float -> half.
 */

/** HALF_TO_FLOAT[h] is the float32 value of the half with bit pattern h. */
export const HALF_TO_FLOAT: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 31) t[h] = mant === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return t;
})();

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);
const F16_MAX_BITS = (127 + 16) << 23; // 65536.0: this and above become infinity
const F32_INF_BITS = 255 << 23;
const DENORM_MAGIC_BITS = (127 - 15 + (23 - 10) + 1) << 23; // 0.5
const DENORM_MAGIC = 0.5;

/** Bit pattern of the half nearest to x (ties to even). */
export function floatToHalfBits(x: number): number {
  scratchF[0] = x;
  let u = scratchU[0];
  const sign = (u >>> 16) & 0x8000;
  u = (u & 0x7fffffff) >>> 0;
  let o: number;
  if (u >= F16_MAX_BITS) {
    o = u > F32_INF_BITS ? 0x7e00 : 0x7c00;
  } else if (u < 113 << 23) {
    // subnormal half or zero: let a float addition with round-to-nearest-even place the 10 mantissa bits
    scratchU[0] = u;
    scratchF[0] = scratchF[0] + DENORM_MAGIC;
    o = scratchU[0] - DENORM_MAGIC_BITS;
  } else {
    const mantOdd = (u >>> 13) & 1;
    // rebias the exponent (u >= 113 << 23, so this stays positive) and round to nearest even
    o = ((u - (112 << 23) + 0xfff + mantOdd) >>> 13) & 0xffff;
  }
  return o | sign;
}

/** dst[i] = half(src[i]) */
export function encodeHalf(src: Float32Array, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = floatToHalfBits(src[i]);
}

/** dst[i] = float(src[i]) */
export function decodeHalf(src: Uint16Array, dst: Float32Array): void {
  const t = HALF_TO_FLOAT;
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]];
}

/** One ring step on the wire in half precision: wire[i] = half(float(wire[i]) + mine[i]), in place. */
export function addHalfInto(wire: Uint16Array, mine: Float32Array): void {
  const t = HALF_TO_FLOAT;
  for (let i = 0; i < wire.length; i++) wire[i] = floatToHalfBits(t[wire[i]] + mine[i]);
}
