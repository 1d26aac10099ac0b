/* 3x3 stride-1 NHWC convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, arXiv 1509.09308):
 * each 2x2 output tile costs 16 multiply-adds per (input, output) channel pair instead of 36, as 16 independent
 * GEMMs over the channels (one per point of the transformed 4x4 tile), run by the same 4x8 micro-kernel as the
 * other convolutions. Why: the convolutions are at 75-100 % of what f32x4 mul+add sustains on one core, so fewer
 * multiplies is the remaining way to make HarDNet's 3x3 layers (most of its work) faster; F(2x2, 3x3)'s transforms
 * only add and halve, so its results stay within a few ulps of the direct sum.
 *   y[n, oh, ow, o] = sum_{kh, kw, c} x[n, oh - pt + kh, ow - pl + kw, c] * g[kh, kw, c, o]   (x outside = 0)
 * flip = 0: g is the filter w [3,3,Ci,Co] itself (Conv2D).
 * flip = 1: w is a forward filter [3,3,Co,Ci] and g[kh,kw,c,o] = w[2-kh, 2-kw, o, c]: the gradient with respect to
 *   the forward conv's input, with x = dy and pt/pl = 2 - the forward's (Conv2DBackpropInput).
 * Tiles are processed in chunks: transform a chunk's inputs (V: [16][tiles][Ci]), multiply (M: [16][tiles][CoP]),
 * transform back into y. The transformed filter U is packed once per call as [16][panel][Ci][8]. */
#include "gemm.h"

#define KC 256

static int tile_chunk(int tiles, int ci, int cop) {
  /* V and M of one chunk within 32 MB, at least 64 tiles so each U panel is reused across many tiles */
  int tc = (32 << 20) / (16 * 4 * (ci + cop));
  tc = max_i(64, tc / MR * MR);
  return min_i(tc, round_up(tiles, MR));
}

int winograd_scratch_bytes(int n, int oh, int ow, int ci, int co) {
  const int cop = round_up(co, NR), tiles = n * ((oh + 1) / 2) * ((ow + 1) / 2);
  const int tc = tile_chunk(tiles, ci, cop);
  return (16 * cop * ci + 16 * tc * ci + 16 * tc * cop + KC) * 4 + 64;
}

static inline float filter_tap(const float *w, int flip, int kh, int kw, int c, int o, int Ci, int Co) {
  return flip ? w[(((2 - kh) * 3 + (2 - kw)) * Co + o) * Ci + c] : w[((kh * 3 + kw) * Ci + c) * Co + o];
}

/* U = G g G^T for every (c, o), into packU[e][panel][c][NR] (columns past Co zero). */
static void transform_filter(const float *w, int flip, int Ci, int Co, float *packU) {
  const int panels = (Co + NR - 1) / NR;
  for (int c = 0; c < Ci; c++)
    for (int o = 0; o < panels * NR; o++) {
      float u[16];
      if (o >= Co) {
        for (int e = 0; e < 16; e++) u[e] = 0.f;
      } else {
        float g[3][3], t[4][3];
        for (int kh = 0; kh < 3; kh++)
          for (int kw = 0; kw < 3; kw++) g[kh][kw] = filter_tap(w, flip, kh, kw, c, o, Ci, Co);
        for (int j = 0; j < 3; j++) {
          t[0][j] = g[0][j];
          t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
          t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
          t[3][j] = g[2][j];
        }
        for (int i = 0; i < 4; i++) {
          u[i * 4 + 0] = t[i][0];
          u[i * 4 + 1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
          u[i * 4 + 2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
          u[i * 4 + 3] = t[i][2];
        }
      }
      const int jp = o / NR, j = o % NR;
      for (int e = 0; e < 16; e++) packU[((long)(e * panels + jp) * Ci + c) * NR + j] = u[e];
    }
}

/* V = B^T d B of one 4x4 input patch, 4 channels at a time; d rows outside the image read as zero. */
static void transform_tile(const float *x, int H, int W, int Ci, int ih0, int iw0, float *v, long estride) {
  const float *row[4];
  int colOk[4];
  for (int i = 0; i < 4; i++) row[i] = (unsigned)(ih0 + i) < (unsigned)H ? x + (long)(ih0 + i) * W * Ci : 0;
  for (int j = 0; j < 4; j++) colOk[j] = (unsigned)(iw0 + j) < (unsigned)W;
  int c = 0;
  const v128_t z = wasm_f32x4_splat(0.f);
  for (; c + 4 <= Ci; c += 4) {
    v128_t d[4][4], t[4][4];
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++)
        d[i][j] = row[i] && colOk[j] ? wasm_v128_load(row[i] + (long)(iw0 + j) * Ci + c) : z;
    for (int j = 0; j < 4; j++) {
      t[0][j] = wasm_f32x4_sub(d[0][j], d[2][j]);
      t[1][j] = wasm_f32x4_add(d[1][j], d[2][j]);
      t[2][j] = wasm_f32x4_sub(d[2][j], d[1][j]);
      t[3][j] = wasm_f32x4_sub(d[1][j], d[3][j]);
    }
    for (int i = 0; i < 4; i++) {
      wasm_v128_store(v + (i * 4 + 0) * estride + c, wasm_f32x4_sub(t[i][0], t[i][2]));
      wasm_v128_store(v + (i * 4 + 1) * estride + c, wasm_f32x4_add(t[i][1], t[i][2]));
      wasm_v128_store(v + (i * 4 + 2) * estride + c, wasm_f32x4_sub(t[i][2], t[i][1]));
      wasm_v128_store(v + (i * 4 + 3) * estride + c, wasm_f32x4_sub(t[i][1], t[i][3]));
    }
  }
  for (; c < Ci; c++) {
    float d[4][4], t[4][4];
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) d[i][j] = row[i] && colOk[j] ? row[i][(long)(iw0 + j) * Ci + c] : 0.f;
    for (int j = 0; j < 4; j++) {
      t[0][j] = d[0][j] - d[2][j]; t[1][j] = d[1][j] + d[2][j];
      t[2][j] = d[2][j] - d[1][j]; t[3][j] = d[1][j] - d[3][j];
    }
    for (int i = 0; i < 4; i++) {
      v[(i * 4 + 0) * estride + c] = t[i][0] - t[i][2];
      v[(i * 4 + 1) * estride + c] = t[i][1] + t[i][2];
      v[(i * 4 + 2) * estride + c] = t[i][2] - t[i][1];
      v[(i * 4 + 3) * estride + c] = t[i][1] - t[i][3];
    }
  }
}

/* Y = A^T m A of one tile's 16 products, 4 output channels at a time, into the valid part of y. */
static void untransform_tile(const float *m, long estride, float *y, int OW, int Co, int oh0, int ow0, int rows,
                             int cols) {
  float *out[2][2];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) out[i][j] = y + ((long)(oh0 + i) * OW + ow0 + j) * Co;
  int o = 0;
  for (; o + 4 <= Co; o += 4) {
    v128_t s[2][4];
    for (int j = 0; j < 4; j++) {
      const v128_t m0 = wasm_v128_load(m + (0 * 4 + j) * estride + o), m1 = wasm_v128_load(m + (1 * 4 + j) * estride + o);
      const v128_t m2 = wasm_v128_load(m + (2 * 4 + j) * estride + o), m3 = wasm_v128_load(m + (3 * 4 + j) * estride + o);
      s[0][j] = wasm_f32x4_add(wasm_f32x4_add(m0, m1), m2);
      s[1][j] = wasm_f32x4_sub(wasm_f32x4_sub(m1, m2), m3);
    }
    for (int i = 0; i < rows; i++) {
      wasm_v128_store(out[i][0] + o, wasm_f32x4_add(wasm_f32x4_add(s[i][0], s[i][1]), s[i][2]));
      if (cols > 1) wasm_v128_store(out[i][1] + o, wasm_f32x4_sub(wasm_f32x4_sub(s[i][1], s[i][2]), s[i][3]));
    }
  }
  for (; o < Co; o++) {
    float s[2][4];
    for (int j = 0; j < 4; j++) {
      const float m0 = m[(0 * 4 + j) * estride + o], m1 = m[(1 * 4 + j) * estride + o];
      const float m2 = m[(2 * 4 + j) * estride + o], m3 = m[(3 * 4 + j) * estride + o];
      s[0][j] = m0 + m1 + m2;
      s[1][j] = m1 - m2 - m3;
    }
    for (int i = 0; i < rows; i++) {
      out[i][0][o] = s[i][0] + s[i][1] + s[i][2];
      if (cols > 1) out[i][1][o] = s[i][1] - s[i][2] - s[i][3];
    }
  }
}

void conv3x3_winograd(const float *x, const float *w, float *y, int N, int H, int W, int Ci, int OH, int OW,
                      int Co, int pt, int pl, int flip, char *scratch) {
  const int panels = (Co + NR - 1) / NR, cop = panels * NR;
  const int th = (OH + 1) / 2, tw = (OW + 1) / 2, tiles = N * th * tw;
  const int tc = tile_chunk(tiles, Ci, cop);
  float *packU = (float *)scratch;
  float *V = packU + 16L * cop * Ci;  /* [16][tc][Ci] */
  float *Mo = V + 16L * tc * Ci;      /* [16][tc][cop] */
  float *zero = Mo + 16L * tc * cop;  /* KC zeros: the A rows of tiles past the last */
  for (int i = 0; i < KC; i++) zero[i] = 0.f;
  transform_filter(w, flip, Ci, Co, packU);
  for (int t0 = 0; t0 < tiles; t0 += tc) {
    const int n_t = min_i(tc, tiles - t0);
    for (int t = 0; t < n_t; t++) {
      const int g = t0 + t, n = g / (th * tw), r = g % (th * tw), ty = r / tw, tx = r % tw;
      transform_tile(x + (long)n * H * W * Ci, H, W, Ci, 2 * ty - pt, 2 * tx - pl, V + (long)t * Ci, (long)tc * Ci);
    }
    for (int e = 0; e < 16; e++) {
      const float *Ve = V + (long)e * tc * Ci;
      float *Me = Mo + (long)e * tc * cop;
      for (int c0 = 0; c0 < Ci; c0 += KC) {
        const int kc = min_i(KC, Ci - c0);
        for (int jp = 0; jp < panels; jp++) {
          const float *b = packU + ((long)(e * panels + jp) * Ci + c0) * NR;
          for (int t = 0; t < n_t; t += MR) {
            const float *a[MR];
            for (int i = 0; i < MR; i++) a[i] = t + i < n_t ? Ve + (long)(t + i) * Ci + c0 : zero;
            ukernel_rows_4x8(kc, a[0], a[1], a[2], a[3], b, Me + (long)t * cop + jp * NR, cop, min_i(MR, n_t - t),
                             NR, c0 > 0);
          }
        }
      }
    }
    for (int t = 0; t < n_t; t++) {
      const int g = t0 + t, n = g / (th * tw), r = g % (th * tw), ty = r / tw, tx = r % tw;
      untransform_tile(Mo + (long)t * cop, (long)tc * cop, y + (long)n * OH * OW * Co, OW, Co, 2 * ty, 2 * tx,
                       min_i(2, OH - 2 * ty), min_i(2, OW - 2 * tx));
    }
  }
}

/* ---- Filter gradient of a 3x3 stride-1 conv by F(3x3, 2x2) ----
 *   dw[kh, kw, c, o] = sum_{n, oh, ow} x[n, oh - pt + kh, ow - pl + kw, c] * dy[n, oh, ow, o]
 * Per 2x2 tile of dy and the 4x4 patch of x under it, the 3x3 contribution is a correlation with output 3 and
 * filter 2 in each dimension: 16 products per (c, o) instead of 36. Minimal filtering F(3, 2) on the points
 * 0, 1, -1, inf: B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 -1 0 1], G = [1 0; .5 .5; .5 -.5; 0 1],
 * A^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1]. Its B^T is F(2x2, 3x3)'s with the last row negated, so the x patches go
 * through transform_tile and the sign (row and column 3) is folded into the dy side. The 16 products summed over
 * all tiles are 16 GEMMs dwT_e[c][o] = sum_t Vx_e[t][c] * Vdy_e[t][o], read with strides (no packing). */
#define BF_TILES 256

static int bf_chunk(int tiles) { return min_i(BF_TILES, tiles); }

int winograd_filter_scratch_bytes(int n, int oh, int ow, int ci, int co) {
  const int cip = round_up(ci, MR), cop = round_up(co, NR), tc = bf_chunk(n * ((oh + 1) / 2) * ((ow + 1) / 2));
  return (16 * cip * cop + 16 * tc * cip + 16 * tc * cop) * 4 + 64;
}

/* G g G^T of one 2x2 dy tile (entries past the image are zero), row and column 3 negated (see above). */
static void transform_dy_tile(const float *dy, int OH, int OW, int Co, int oh0, int ow0, float *v, long estride) {
  const float *g[2][2];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      g[i][j] = oh0 + i < OH && ow0 + j < OW ? dy + ((long)(oh0 + i) * OW + ow0 + j) * Co : 0;
  const v128_t z = wasm_f32x4_splat(0.f), half = wasm_f32x4_splat(0.5f);
  int o = 0;
  for (; o + 4 <= Co; o += 4) {
    v128_t d[2][2], t[4][2];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) d[i][j] = g[i][j] ? wasm_v128_load(g[i][j] + o) : z;
    for (int j = 0; j < 2; j++) {
      t[0][j] = d[0][j];
      t[1][j] = wasm_f32x4_mul(half, wasm_f32x4_add(d[0][j], d[1][j]));
      t[2][j] = wasm_f32x4_mul(half, wasm_f32x4_sub(d[0][j], d[1][j]));
      t[3][j] = wasm_f32x4_neg(d[1][j]);
    }
    for (int i = 0; i < 4; i++) {
      wasm_v128_store(v + (i * 4 + 0) * estride + o, t[i][0]);
      wasm_v128_store(v + (i * 4 + 1) * estride + o, wasm_f32x4_mul(half, wasm_f32x4_add(t[i][0], t[i][1])));
      wasm_v128_store(v + (i * 4 + 2) * estride + o, wasm_f32x4_mul(half, wasm_f32x4_sub(t[i][0], t[i][1])));
      wasm_v128_store(v + (i * 4 + 3) * estride + o, wasm_f32x4_neg(t[i][1]));
    }
  }
  for (; o < Co; o++) {
    float d[2][2], t[4][2];
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 2; j++) d[i][j] = g[i][j] ? g[i][j][o] : 0.f;
    for (int j = 0; j < 2; j++) {
      t[0][j] = d[0][j]; t[1][j] = 0.5f * (d[0][j] + d[1][j]);
      t[2][j] = 0.5f * (d[0][j] - d[1][j]); t[3][j] = -d[1][j];
    }
    for (int i = 0; i < 4; i++) {
      v[(i * 4 + 0) * estride + o] = t[i][0];
      v[(i * 4 + 1) * estride + o] = 0.5f * (t[i][0] + t[i][1]);
      v[(i * 4 + 2) * estride + o] = 0.5f * (t[i][0] - t[i][1]);
      v[(i * 4 + 3) * estride + o] = -t[i][1];
    }
  }
}

void conv3x3_winograd_filter(const float *x, const float *dy, float *dw, int N, int H, int W, int Ci, int OH,
                             int OW, int Co, int pt, int pl, char *scratch) {
  const int cip = round_up(Ci, MR), cop = round_up(Co, NR);
  const int th = (OH + 1) / 2, tw = (OW + 1) / 2, tiles = N * th * tw, tc = bf_chunk(tiles);
  float *acc = (float *)scratch;          /* [16][cip][cop] */
  float *Vx = acc + 16L * cip * cop;      /* [16][tc][cip] */
  float *Vd = Vx + 16L * tc * cip;        /* [16][tc][cop] */
  for (int t0 = 0; t0 < tiles; t0 += tc) {
    const int n_t = min_i(tc, tiles - t0);
    for (int t = 0; t < n_t; t++) {
      const int g = t0 + t, n = g / (th * tw), r = g % (th * tw), ty = r / tw, tx = r % tw;
      transform_tile(x + (long)n * H * W * Ci, H, W, Ci, 2 * ty - pt, 2 * tx - pl, Vx + (long)t * cip, (long)tc * cip);
      transform_dy_tile(dy + (long)n * OH * OW * Co, OH, OW, Co, 2 * ty, 2 * tx, Vd + (long)t * cop, (long)tc * cop);
    }
    for (int e = 0; e < 16; e++)
      for (int c0 = 0; c0 < cip; c0 += MR)
        for (int o0 = 0; o0 < cop; o0 += NR)
        {
          const float *a = Vx + (long)e * tc * cip + c0;
          ukernel_4x8_any(n_t, a, a + 1, a + 2, a + 3, cip, Vd + (long)e * tc * cop + o0, cop,
                          acc + ((long)e * cip + c0) * cop + o0, cop, MR, NR, t0 > 0);
        }
  }
  /* dw = A^T m A for every (c, o) */
  for (int c = 0; c < Ci; c++) {
    int o = 0;
    for (; o + 4 <= Co; o += 4) {
      v128_t s[3][4];
      for (int j = 0; j < 4; j++) {
        const v128_t m0 = wasm_v128_load(acc + ((long)(0 * 4 + j) * cip + c) * cop + o);
        const v128_t m1 = wasm_v128_load(acc + ((long)(1 * 4 + j) * cip + c) * cop + o);
        const v128_t m2 = wasm_v128_load(acc + ((long)(2 * 4 + j) * cip + c) * cop + o);
        const v128_t m3 = wasm_v128_load(acc + ((long)(3 * 4 + j) * cip + c) * cop + o);
        s[0][j] = wasm_f32x4_add(wasm_f32x4_add(m0, m1), m2);
        s[1][j] = wasm_f32x4_sub(m1, m2);
        s[2][j] = wasm_f32x4_add(wasm_f32x4_add(m1, m2), m3);
      }
      for (int i = 0; i < 3; i++) {
        wasm_v128_store(dw + ((long)(i * 3 + 0) * Ci + c) * Co + o, wasm_f32x4_add(wasm_f32x4_add(s[i][0], s[i][1]), s[i][2]));
        wasm_v128_store(dw + ((long)(i * 3 + 1) * Ci + c) * Co + o, wasm_f32x4_sub(s[i][1], s[i][2]));
        wasm_v128_store(dw + ((long)(i * 3 + 2) * Ci + c) * Co + o, wasm_f32x4_add(wasm_f32x4_add(s[i][1], s[i][2]), s[i][3]));
      }
    }
    for (; o < Co; o++) {
      float s[3][4];
      for (int j = 0; j < 4; j++) {
        const float m0 = acc[((long)(0 * 4 + j) * cip + c) * cop + o], m1 = acc[((long)(1 * 4 + j) * cip + c) * cop + o];
        const float m2 = acc[((long)(2 * 4 + j) * cip + c) * cop + o], m3 = acc[((long)(3 * 4 + j) * cip + c) * cop + o];
        s[0][j] = m0 + m1 + m2; s[1][j] = m1 - m2; s[2][j] = m1 + m2 + m3;
      }
      for (int i = 0; i < 3; i++) {
        dw[((long)(i * 3 + 0) * Ci + c) * Co + o] = s[i][0] + s[i][1] + s[i][2];
        dw[((long)(i * 3 + 1) * Ci + c) * Co + o] = s[i][1] - s[i][2];
        dw[((long)(i * 3 + 2) * Ci + c) * Co + o] = s[i][1] + s[i][2] + s[i][3];
      }
    }
  }
}
