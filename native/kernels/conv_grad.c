/* Gradients of a dense NHWC convolution (filter HWIO, dilation 1), as blocked GEMMs.
 * Conventions: x [N,H,W,Ci], dy [N,OH,OW,Co], filter [KH,KW,Ci,Co]; pt/pl are the top/left
 * paddings (bottom/right follow from the shapes). K = KH*KW*Ci, M = N*OH*OW.
 * All pointers are byte offsets in this module's own memory; the caller copies tensors in/out. */
#include "gemm.h"

/* ---- Conv2DBackpropFilter: dW[K x Co] = im2col(x)^T[K x M] * dy[M x Co] ---- */

/* Spatial chunk of the reduction: the packed dy chunk (chunk x Co) should stay in L2. */
static int filter_chunk(int co) { return max_i(64, min_i(512, round_up(65536 / max_i(co, 1), 4))); }

int conv_backprop_filter_scratch_bytes(int co) {
  int mc = filter_chunk(co);
  return (round_up(co, NR) * mc + MR * mc) * 4 + 3 * mc * 4 + 64;
}

void conv_backprop_filter(const float *x, const float *dy, float *dw, int N, int H, int W, int Ci,
                          int OH, int OW, int Co, int KH, int KW, int sh, int sw, int pt, int pl,
                          char *scratch) {
  const int K = KH * KW * Ci, M = N * OH * OW, MC = filter_chunk(Co);
  const int panels = (Co + NR - 1) / NR;
  float *packB = (float *)scratch;
  float *packA = packB + panels * NR * MC;
  int *pixOff = (int *)(packA + MR * MC); /* offset of x[n,0,0,0] */
  int *ihBase = pixOff + MC, *iwBase = ihBase + MC;
  __builtin_memset(dw, 0, (unsigned)K * Co * 4);
  int n = 0, oh = 0, ow = 0;
  for (int m0 = 0; m0 < M; m0 += MC) {
    const int mc = min_i(MC, M - m0);
    for (int p = 0; p < mc; p++) {
      pixOff[p] = n * H * W * Ci; ihBase[p] = oh * sh - pt; iwBase[p] = ow * sw - pl;
      if (++ow == OW) { ow = 0; if (++oh == OH) { oh = 0; n++; } }
    }
    /* B panels: [panel][p][NR] from dy rows (contiguous Co). */
    for (int jp = 0; jp < panels; jp++) {
      const int j0 = jp * NR, nr = min_i(NR, Co - j0);
      float *dst = packB + jp * NR * mc;
      const float *src = dy + (long)m0 * Co + j0;
      if (nr == NR) {
        for (int p = 0; p < mc; p++, dst += NR, src += Co) {
          wasm_v128_store(dst, wasm_v128_load(src)); wasm_v128_store(dst + 4, wasm_v128_load(src + 4));
        }
      } else {
        for (int p = 0; p < mc; p++, dst += NR, src += Co)
          for (int j = 0; j < NR; j++) dst[j] = j < nr ? src[j] : 0.f;
      }
    }
    for (int r0 = 0; r0 < K; r0 += MR) {
      const int mr = min_i(MR, K - r0);
      const int ci0 = r0 % Ci, kw = (r0 / Ci) % KW, kh = r0 / (Ci * KW);
      if (mr == MR && ci0 + MR <= Ci) { /* four channels of one tap: one vector per pixel */
        for (int p = 0; p < mc; p++) {
          const int ih = ihBase[p] + kh, iw = iwBase[p] + kw;
          v128_t v = wasm_f32x4_splat(0.f);
          if ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W)
            v = wasm_v128_load(x + pixOff[p] + (ih * W + iw) * Ci + ci0);
          wasm_v128_store(packA + p * MR, v);
        }
      } else { /* rows straddle taps (e.g. Ci = 3) or run past K */
        for (int i = 0; i < MR; i++) {
          const int r = r0 + i;
          const int c = r % Ci, tw = (r / Ci) % KW, th = r / (Ci * KW);
          for (int p = 0; p < mc; p++) {
            const int ih = ihBase[p] + th, iw = iwBase[p] + tw;
            float v = 0.f;
            if (r < K && (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W)
              v = x[pixOff[p] + (ih * W + iw) * Ci + c];
            packA[p * MR + i] = v;
          }
        }
      }
      for (int jp = 0; jp < panels; jp++) {
        const int j0 = jp * NR;
        ukernel_4x8(mc, packA, packB + jp * NR * mc, dw + (long)r0 * Co + j0, Co, mr, min_i(NR, Co - j0), 1);
      }
    }
  }
}

/* ---- Conv2DBackpropInput: dcol[M x K] = dy[M x Co] * W^T[Co x K], then col2im into dx ---- */

static int input_chunk(int K, int co) {
  int big = max_i(K, co);
  return max_i(16, min_i(256, (65536 / max_i(big, 1)) / MR * MR));
}

int conv_backprop_input_scratch_bytes(int K, int co) {
  int mc = input_chunk(K, co);
  return (round_up(K, NR) * co + mc * co + mc * K) * 4 + 64;
}

void conv_backprop_input(const float *dy, const float *w, float *dx, int N, int H, int W, int Ci,
                         int OH, int OW, int Co, int KH, int KW, int sh, int sw, int pt, int pl,
                         char *scratch) {
  const int K = KH * KW * Ci, M = N * OH * OW, MC = input_chunk(K, Co);
  const int panels = (K + NR - 1) / NR;
  /* A 1x1 stride-1 unpadded conv's dcol IS dx: write the product straight into it. */
  const int direct = KH == 1 && KW == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && OH == H && OW == W;
  float *packB = (float *)scratch;           /* [panel][Co][NR] = W^T panels */
  float *packA = packB + panels * NR * Co;   /* [row block][Co][MR] */
  float *dcol = packA + MC * Co;             /* [mc][K] */
  for (int jp = 0; jp < panels; jp++)
    for (int co = 0; co < Co; co++)
      for (int j = 0; j < NR; j++) {
        const int k = jp * NR + j;
        packB[(jp * Co + co) * NR + j] = k < K ? w[k * Co + co] : 0.f;
      }
  if (!direct) __builtin_memset(dx, 0, (unsigned)N * H * W * Ci * 4);
  int n = 0, oh = 0, ow = 0;
  for (int m0 = 0; m0 < M; m0 += MC) {
    const int mc = min_i(MC, M - m0);
    const int blocks = (mc + MR - 1) / MR;
    for (int b = 0; b < blocks; b++)
      for (int i = 0; i < MR; i++) {
        const int r = b * MR + i;
        float *dst = packA + b * Co * MR + i;
        if (r < mc) {
          const float *src = dy + (long)(m0 + r) * Co;
          for (int co = 0; co < Co; co++) dst[co * MR] = src[co];
        } else {
          for (int co = 0; co < Co; co++) dst[co * MR] = 0.f;
        }
      }
    float *out = direct ? dx + (long)m0 * Ci : dcol;
    for (int jp = 0; jp < panels; jp++) {
      const int j0 = jp * NR, nr = min_i(NR, K - j0);
      for (int b = 0; b < blocks; b++)
        ukernel_4x8(Co, packA + b * Co * MR, packB + jp * Co * NR, out + (long)b * MR * K + j0, K,
                    min_i(MR, mc - b * MR), nr, 0);
    }
    if (direct) continue;
    /* col2im: each tap adds a contiguous Ci run into one dx pixel. */
    for (int p = 0; p < mc; p++) {
      const float *row = dcol + (long)p * K;
      for (int kh = 0; kh < KH; kh++) {
        const int ih = oh * sh - pt + kh;
        if ((unsigned)ih >= (unsigned)H) continue;
        for (int kw = 0; kw < KW; kw++) {
          const int iw = ow * sw - pl + kw;
          if ((unsigned)iw >= (unsigned)W) continue;
          float *d = dx + ((long)(n * H + ih) * W + iw) * Ci;
          const float *s = row + (kh * KW + kw) * Ci;
          int c = 0;
          for (; c + 4 <= Ci; c += 4) wasm_v128_store(d + c, wasm_f32x4_add(wasm_v128_load(d + c), wasm_v128_load(s + c)));
          for (; c < Ci; c++) d[c] += s[c];
        }
      }
      if (++ow == OW) { ow = 0; if (++oh == OH) { oh = 0; n++; } }
    }
  }
}
