/* Register-blocked SIMD GEMM micro-kernel shared by the convolution gradients.
 * Why hand-written: tfjs-backend-wasm's matMul is fast only without transposes, and the
 * gradients need transposed products; packing operands here into the micro-kernel's layout
 * makes every product "non-transposed" without a separate (slow) Transpose pass. */
#ifndef KERNELS_GEMM_H
#define KERNELS_GEMM_H
#include <wasm_simd128.h>

#define MR 4 /* rows of C per micro-kernel call: 4x8 keeps 8 accumulators + 3 operands in the 16 xmm registers V8 has */
#define NR 8

/* The micro-kernel: c[mr x nr] (+)= sum_p A[p][i] * b[p * ldb + j] for i < 4, j < 8, where A[p][i] = a_i[p * lda].
 * The four A rows are separate pointers so one body serves packed operands (a_i = a + i, lda = MR), rows read in
 * place (lda = 1) and strided ones; b is always 8 consecutive floats per p. */
static inline void ukernel_4x8_any(int kc, const float *restrict a0, const float *restrict a1,
                                   const float *restrict a2, const float *restrict a3, int lda,
                                   const float *restrict b, int ldb, float *restrict c, int ldc, int mr, int nr,
                                   int accumulate) {
  v128_t c00 = wasm_f32x4_splat(0.f), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int p = 0; p < kc; p++) {
    const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
    const v128_t s0 = wasm_v128_load32_splat(a0);
    c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(s0, b0));
    c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(s0, b1));
    const v128_t s1 = wasm_v128_load32_splat(a1);
    c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(s1, b0));
    c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(s1, b1));
    const v128_t s2 = wasm_v128_load32_splat(a2);
    c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(s2, b0));
    c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(s2, b1));
    const v128_t s3 = wasm_v128_load32_splat(a3);
    c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(s3, b0));
    c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(s3, b1));
    a0 += lda; a1 += lda; a2 += lda; a3 += lda;
    b += ldb;
  }
  if (mr == MR && nr == NR) {
    float *r0 = c, *r1 = c + ldc, *r2 = c + 2 * ldc, *r3 = c + 3 * ldc;
    if (accumulate) {
      c00 = wasm_f32x4_add(c00, wasm_v128_load(r0)); c01 = wasm_f32x4_add(c01, wasm_v128_load(r0 + 4));
      c10 = wasm_f32x4_add(c10, wasm_v128_load(r1)); c11 = wasm_f32x4_add(c11, wasm_v128_load(r1 + 4));
      c20 = wasm_f32x4_add(c20, wasm_v128_load(r2)); c21 = wasm_f32x4_add(c21, wasm_v128_load(r2 + 4));
      c30 = wasm_f32x4_add(c30, wasm_v128_load(r3)); c31 = wasm_f32x4_add(c31, wasm_v128_load(r3 + 4));
    }
    wasm_v128_store(r0, c00); wasm_v128_store(r0 + 4, c01);
    wasm_v128_store(r1, c10); wasm_v128_store(r1 + 4, c11);
    wasm_v128_store(r2, c20); wasm_v128_store(r2 + 4, c21);
    wasm_v128_store(r3, c30); wasm_v128_store(r3 + 4, c31);
    return;
  }
  /* Edge tile: spill to a buffer and copy the valid part only. */
  float t[MR * NR];
  wasm_v128_store(t, c00); wasm_v128_store(t + 4, c01);
  wasm_v128_store(t + 8, c10); wasm_v128_store(t + 12, c11);
  wasm_v128_store(t + 16, c20); wasm_v128_store(t + 20, c21);
  wasm_v128_store(t + 24, c30); wasm_v128_store(t + 28, c31);
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0.f) + t[i * NR + j];
}

/* c[mr x nr] (+)= sum_p a[p][0..MR) (x) b[p][0..NR), a and b packed, zero-padded to MR / NR. */
static inline void ukernel_4x8(int kc, const float *restrict a, const float *restrict b,
                               float *restrict c, int ldc, int mr, int nr, int accumulate) {
  ukernel_4x8_any(kc, a, a + 1, a + 2, a + 3, MR, b, NR, c, ldc, mr, nr, accumulate);
}

/* The same with the four A rows read where they are (rows of x, or of a transformed tile buffer). */
static inline void ukernel_rows_4x8(int kc, const float *restrict a0, const float *restrict a1,
                                    const float *restrict a2, const float *restrict a3, const float *restrict b,
                                    float *restrict c, int ldc, int mr, int nr, int accumulate) {
  ukernel_4x8_any(kc, a0, a1, a2, a3, 1, b, NR, c, ldc, mr, nr, accumulate);
}

static inline int min_i(int a, int b) { return a < b ? a : b; }
static inline int max_i(int a, int b) { return a > b ? a : b; }
static inline int round_up(int a, int m) { return (a + m - 1) / m * m; }
#endif
