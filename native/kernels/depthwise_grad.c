/* Gradients of a depthwise NHWC convolution with channel multiplier 1 (filter [KH,KW,C,1]).
 * Channels are innermost in NHWC, so every inner loop runs over contiguous channels, 4 per SIMD op. */
#include "gemm.h"

void depthwise_backprop_input(const float *dy, const float *w, float *dx, int N, int H, int W, int C,
                              int OH, int OW, int KH, int KW, int sh, int sw, int pt, int pl) {
  __builtin_memset(dx, 0, (unsigned)N * H * W * C * 4);
  for (int n = 0; n < N; n++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        const float *g = dy + ((long)(n * OH + oh) * OW + ow) * C;
        for (int kh = 0; kh < KH; kh++) {
          const int ih = oh * sh - pt + kh;
          if ((unsigned)ih >= (unsigned)H) continue;
          for (int kw = 0; kw < KW; kw++) {
            const int iw = ow * sw - pl + kw;
            if ((unsigned)iw >= (unsigned)W) continue;
            float *d = dx + ((long)(n * H + ih) * W + iw) * C;
            const float *f = w + (kh * KW + kw) * C;
            int c = 0;
            for (; c + 4 <= C; c += 4)
              wasm_v128_store(d + c, wasm_f32x4_add(wasm_v128_load(d + c),
                                                    wasm_f32x4_mul(wasm_v128_load(g + c), wasm_v128_load(f + c))));
            for (; c < C; c++) d[c] += g[c] * f[c];
          }
        }
      }
}

void depthwise_backprop_filter(const float *x, const float *dy, float *dw, int N, int H, int W, int C,
                               int OH, int OW, int KH, int KW, int sh, int sw, int pt, int pl) {
  __builtin_memset(dw, 0, (unsigned)KH * KW * C * 4);
  for (int n = 0; n < N; n++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        const float *g = dy + ((long)(n * OH + oh) * OW + ow) * C;
        for (int kh = 0; kh < KH; kh++) {
          const int ih = oh * sh - pt + kh;
          if ((unsigned)ih >= (unsigned)H) continue;
          for (int kw = 0; kw < KW; kw++) {
            const int iw = ow * sw - pl + kw;
            if ((unsigned)iw >= (unsigned)W) continue;
            const float *s = x + ((long)(n * H + ih) * W + iw) * C;
            float *d = dw + (kh * KW + kw) * C;
            int c = 0;
            for (; c + 4 <= C; c += 4)
              wasm_v128_store(d + c, wasm_f32x4_add(wasm_v128_load(d + c),
                                                    wasm_f32x4_mul(wasm_v128_load(g + c), wasm_v128_load(s + c))));
            for (; c < C; c++) d[c] += g[c] * s[c];
          }
        }
      }
}
