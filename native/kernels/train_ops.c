/* Memory-bound training kernels for a HarDNet step on tfjs-backend-wasm, where the stock kernels are JS loops
 * or many small tensor ops: training BatchNorm (optionally fused with the ReLU6 after it), row-block
 * concat/split (channel concat and its gradient), and max-pool backprop. NHWC; channels innermost, so every
 * inner loop runs over contiguous channels, 4 per SIMD op. */
#include <wasm_simd128.h>

/* Copies n floats; short rows (the common case: a few dozen channels) with SIMD moves, long ones with
 * memory.copy, whose fixed cost only pays off for longer runs. */
static inline void copy_floats(float *restrict dst, const float *restrict src, int n) {
  if (n >= 64) {
    __builtin_memcpy(dst, src, (unsigned)n * 4);
    return;
  }
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(dst + i, wasm_v128_load(src + i));
  for (; i < n; i++) dst[i] = src[i];
}

/* out[r] = ins[0][r] ++ ins[1][r] ++ ...: each input is [rows, widths[i]], the output [rows, sum widths].
 * With rows = prod(shape[:axis]) and widths = prod(shape[axis:]) this is a concat along any axis. */
void concat_rows(float *out, const int *ins, const int *widths, int k, int rows) {
  int total = 0;
  for (int i = 0; i < k; i++) total += widths[i];
  for (int i = 0, off = 0; i < k; off += widths[i], i++) {
    const float *src = (const float *)ins[i];
    const int w = widths[i];
    for (int r = 0; r < rows; r++) copy_floats(out + (long)r * total + off, src + (long)r * w, w);
  }
}

/* The inverse: x [rows, sum widths] into outs[i] [rows, widths[i]] (SplitV along any axis). */
void split_rows(const float *x, const int *outs, const int *widths, int k, int rows) {
  int total = 0;
  for (int i = 0; i < k; i++) total += widths[i];
  for (int i = 0, off = 0; i < k; off += widths[i], i++) {
    float *dst = (float *)outs[i];
    const int w = widths[i];
    for (int r = 0; r < rows; r++) copy_floats(dst + (long)r * w, x + (long)r * total + off, w);
  }
}

/* Per-channel reductions over M rows of C channels accumulate in float for a block of rows (SIMD, cache
 * resident) and then in double, so that sums over 8*112*112 rows keep float32 accuracy. */
#define BLOCK_ROWS 64

static void clear_f(float *a, int n) { for (int i = 0; i < n; i++) a[i] = 0.f; }
static void clear_d(double *a, int n) { for (int i = 0; i < n; i++) a[i] = 0.0; }
static void flush(double *total, float *block, int n) {
  for (int i = 0; i < n; i++) { total[i] += block[i]; block[i] = 0.f; }
}

static inline float inv_std(float variance, float eps) { return 1.f / __builtin_sqrtf(variance + eps); }

/* Training-mode BatchNorm, in place (x becomes y): batch mean and biased variance (two passes: the
 * centred second pass avoids E[x^2]-E[x]^2 cancellation), then y = (x - mean) * invStd * gamma + beta,
 * clamped to [0, 6] when relu6 is set. scratch: C floats and C doubles (8-byte aligned). */
void bn_train_forward(float *xy, const float *gamma, const float *beta, float *mean, float *var,
                      int M, int C, float eps, int relu6, void *scratch) {
  double *dsum = (double *)scratch;
  float *acc = (float *)(dsum + C);
  float *istd = acc; /* reused after the reductions */
  clear_f(acc, C);
  clear_d(dsum, C);
  for (int r = 0; r < M; r++) {
    const float *row = xy + (long)r * C;
    int c = 0;
    for (; c + 4 <= C; c += 4) wasm_v128_store(acc + c, wasm_f32x4_add(wasm_v128_load(acc + c), wasm_v128_load(row + c)));
    for (; c < C; c++) acc[c] += row[c];
    if ((r + 1) % BLOCK_ROWS == 0) flush(dsum, acc, C);
  }
  flush(dsum, acc, C);
  for (int c = 0; c < C; c++) mean[c] = (float)(dsum[c] / M);
  clear_d(dsum, C);
  for (int r = 0; r < M; r++) {
    const float *row = xy + (long)r * C;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t d = wasm_f32x4_sub(wasm_v128_load(row + c), wasm_v128_load(mean + c));
      wasm_v128_store(acc + c, wasm_f32x4_add(wasm_v128_load(acc + c), wasm_f32x4_mul(d, d)));
    }
    for (; c < C; c++) { const float d = row[c] - mean[c]; acc[c] += d * d; }
    if ((r + 1) % BLOCK_ROWS == 0) flush(dsum, acc, C);
  }
  flush(dsum, acc, C);
  for (int c = 0; c < C; c++) { var[c] = (float)(dsum[c] / M); istd[c] = inv_std(var[c], eps); }
  const v128_t zero = wasm_f32x4_splat(0.f), six = wasm_f32x4_splat(6.f);
  for (int r = 0; r < M; r++) {
    float *row = xy + (long)r * C;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(row + c), wasm_v128_load(mean + c)), wasm_v128_load(istd + c));
      v128_t z = wasm_f32x4_add(wasm_f32x4_mul(xh, wasm_v128_load(gamma + c)), wasm_v128_load(beta + c));
      if (relu6) z = wasm_f32x4_pmin(wasm_f32x4_pmax(z, zero), six);
      wasm_v128_store(row + c, z);
    }
    for (; c < C; c++) {
      float z = (row[c] - mean[c]) * istd[c] * gamma[c] + beta[c];
      if (relu6) z = z < 0.f ? 0.f : (z > 6.f ? 6.f : z);
      row[c] = z;
    }
  }
}

/* Gradient of bn_train_forward, in place (dy becomes dx). With relu6 the incoming gradient first passes
 * tfjs's Relu6 mask, 0 < z <= 6, with z recomputed exactly as the forward pass computed it. Then
 *   dbeta = sum g,  dgamma = sum g * xhat,  dx = gamma * invStd * (g - dbeta / M - xhat * dgamma / M).
 * scratch: 2C doubles and 3C floats. */
void bn_train_backward(const float *x, float *dydx, const float *gamma, const float *beta, const float *mean,
                       const float *var, float *dgamma, float *dbeta, int M, int C, float eps, int relu6,
                       void *scratch) {
  double *sg = (double *)scratch, *sgx = sg + C;
  float *ag = (float *)(sgx + C), *agx = ag + C, *istd = agx + C;
  clear_d(sg, 2 * C);
  clear_f(ag, 2 * C);
  for (int c = 0; c < C; c++) istd[c] = inv_std(var[c], eps);
  const v128_t zero = wasm_f32x4_splat(0.f), six = wasm_f32x4_splat(6.f);
  for (int r = 0; r < M; r++) {
    const float *xr = x + (long)r * C;
    float *gr = dydx + (long)r * C;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + c), wasm_v128_load(mean + c)), wasm_v128_load(istd + c));
      v128_t g = wasm_v128_load(gr + c);
      if (relu6) {
        const v128_t z = wasm_f32x4_add(wasm_f32x4_mul(xh, wasm_v128_load(gamma + c)), wasm_v128_load(beta + c));
        g = wasm_v128_and(g, wasm_v128_and(wasm_f32x4_gt(z, zero), wasm_f32x4_le(z, six)));
        wasm_v128_store(gr + c, g); /* masked gradient, reused by the second pass */
      }
      wasm_v128_store(ag + c, wasm_f32x4_add(wasm_v128_load(ag + c), g));
      wasm_v128_store(agx + c, wasm_f32x4_add(wasm_v128_load(agx + c), wasm_f32x4_mul(g, xh)));
    }
    for (; c < C; c++) {
      const float xh = (xr[c] - mean[c]) * istd[c];
      float g = gr[c];
      if (relu6) {
        const float z = xh * gamma[c] + beta[c];
        g = (z > 0.f && z <= 6.f) ? g : 0.f;
        gr[c] = g;
      }
      ag[c] += g;
      agx[c] += g * xh;
    }
    if ((r + 1) % BLOCK_ROWS == 0) { flush(sg, ag, C); flush(sgx, agx, C); }
  }
  flush(sg, ag, C);
  flush(sgx, agx, C);
  /* the float accumulators are free again: they now hold dbeta / M and dgamma / M */
  for (int c = 0; c < C; c++) {
    dbeta[c] = (float)sg[c];
    dgamma[c] = (float)sgx[c];
    ag[c] = dbeta[c] / M;
    agx[c] = dgamma[c] / M;
  }
  for (int r = 0; r < M; r++) {
    const float *xr = x + (long)r * C;
    float *gr = dydx + (long)r * C;
    int c = 0;
    for (; c + 4 <= C; c += 4) {
      const v128_t is = wasm_v128_load(istd + c);
      const v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + c), wasm_v128_load(mean + c)), is);
      const v128_t inner = wasm_f32x4_sub(wasm_f32x4_sub(wasm_v128_load(gr + c), wasm_v128_load(ag + c)),
                                          wasm_f32x4_mul(xh, wasm_v128_load(agx + c)));
      wasm_v128_store(gr + c, wasm_f32x4_mul(inner, wasm_f32x4_mul(wasm_v128_load(gamma + c), is)));
    }
    for (; c < C; c++) {
      const float xh = (xr[c] - mean[c]) * istd[c];
      gr[c] = (gr[c] - ag[c] - xh * agx[c]) * (gamma[c] * istd[c]);
    }
  }
}

/* Max-pool backprop: each output's gradient goes to the first maximum of its window (row-major scan,
 * strict '>'), as tfjs's cpu kernel and PyTorch choose; padding never wins. */
void maxpool_backprop(const float *x, const float *dy, float *dx, int N, int H, int W, int C, int OH, int OW,
                      int KH, int KW, int sh, int sw, int pt, int pl) {
  __builtin_memset(dx, 0, (unsigned)N * H * W * C * 4);
  const v128_t ninf = wasm_f32x4_splat(-__builtin_inff());
  for (int n = 0; n < N; n++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        const int h0 = oh * sh - pt, w0 = ow * sw - pl;
        const int kh0 = h0 < 0 ? -h0 : 0, kh1 = h0 + KH > H ? H - h0 : KH;
        const int kw0 = w0 < 0 ? -w0 : 0, kw1 = w0 + KW > W ? W - w0 : KW;
        const float *g = dy + ((long)(n * OH + oh) * OW + ow) * C;
        const float *xb = x + (long)n * H * W * C;
        float *db = dx + (long)n * H * W * C;
        int c = 0;
        for (; c + 4 <= C; c += 4) {
          v128_t best = ninf, arg = wasm_i32x4_splat(-1);
          for (int kh = kh0; kh < kh1; kh++)
            for (int kw = kw0; kw < kw1; kw++) {
              const v128_t v = wasm_v128_load(xb + ((long)(h0 + kh) * W + (w0 + kw)) * C + c);
              const v128_t gt = wasm_f32x4_gt(v, best);
              best = wasm_v128_bitselect(v, best, gt);
              arg = wasm_v128_bitselect(wasm_i32x4_splat(kh * KW + kw), arg, gt);
            }
          const v128_t gv = wasm_v128_load(g + c);
          for (int kh = kh0; kh < kh1; kh++)
            for (int kw = kw0; kw < kw1; kw++) {
              float *d = db + ((long)(h0 + kh) * W + (w0 + kw)) * C + c;
              const v128_t hit = wasm_i32x4_eq(arg, wasm_i32x4_splat(kh * KW + kw));
              wasm_v128_store(d, wasm_f32x4_add(wasm_v128_load(d), wasm_v128_and(gv, hit)));
            }
        }
        for (; c < C; c++) {
          float best = -__builtin_inff();
          long at = -1;
          for (int kh = kh0; kh < kh1; kh++)
            for (int kw = kw0; kw < kw1; kw++) {
              const long i = ((long)(h0 + kh) * W + (w0 + kw)) * C + c;
              if (xb[i] > best) { best = xb[i]; at = i; }
            }
          if (at >= 0) db[at] += g[c];
        }
      }
}
