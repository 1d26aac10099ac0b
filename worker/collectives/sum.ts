/**
 * The summation kernel of the ring: acc[i] += src[i] over one chunk.
 * A plain indexed loop unrolled by four; see bench/allreduce.ts --kernels for the measured comparison with a
 * WebAssembly SIMD kernel (which must copy both operands into its linear memory first).
 */
export function addInto(acc: Float32Array, src: Float32Array): void {
  const n = acc.length;
  if (src.length !== n) throw new RangeError(`addInto: lengths differ (${n} vs ${src.length})`);
  let i = 0;
  for (const end = n - (n & 3); i < end; i += 4) {
    acc[i] += src[i];
    acc[i + 1] += src[i + 1];
    acc[i + 2] += src[i + 2];
    acc[i + 3] += src[i + 3];
  }
  for (; i < n; i++) acc[i] += src[i];
}

/** acc[i] /= d (mean); division rather than multiplying by 1/d so that the result is the correctly rounded quotient. */
export function divideBy(acc: Float32Array, d: number): void {
  for (let i = 0; i < acc.length; i++) acc[i] /= d;
}
