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
 * transform back into y. The transformed filter U is packed once per call as [16][panel][Ci][8].
 * Further down: the same with 4x4 tiles, F(4x4, 3x3), and the filter gradients F(3x3, 2x2) and F(3x3, 4x4); the
 * caller picks the tile (worker/backend/wasm_kernels/conv2d.ts, winogradTile, says which and why). */
#include "gemm.h"

#define KC 256

/* An m x m output tile of a 3x3 filter comes from an (m + 2) x (m + 2) patch: that many transform points (planes). */
static int planes_of(int m) { return (m + 2) * (m + 2); }

static int tiles_of(int n, int oh, int ow, int m) { return n * ((oh + m - 1) / m) * ((ow + m - 1) / m); }

static int tile_chunk(int tiles, int ci, int cop, int planes) {
  /* V and M of one chunk within 32 MB, at least 64 tiles so each U panel is reused across many tiles */
  int tc = (32 << 20) / (planes * 4 * (ci + cop));
  tc = max_i(64, tc / MR * MR);
  return min_i(tc, round_up(tiles, MR));
}

/* m is the output tile, 2 for F(2x2, 3x3) or 4 for F(4x4, 3x3) (chosen by the caller) */
int winograd_scratch_bytes(int n, int oh, int ow, int ci, int co, int m) {
  const int planes = planes_of(m), cop = round_up(co, NR), tc = tile_chunk(tiles_of(n, oh, ow, m), ci, cop, planes);
  return (planes * cop * ci + planes * tc * ci + planes * tc * cop + KC) * 4 + 64;
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

/* The transform domain's products: for each of the `planes` points, M_e[t][o] = sum_c V_e[t][c] * U_e[c][o] over
 * the chunk's n_t tiles (V: [planes][tc][Ci], packU: [planes][panel][Ci][NR], M: [planes][tc][cop]). */
static void plane_gemms(int planes, const float *V, const float *packU, float *Mo, int n_t, int tc, int Ci, int panels,
                        const float *zero) {
  const int cop = panels * NR;
  for (int e = 0; e < planes; e++) {
    const float *Ve = V + (long)e * tc * Ci;
    float *Me = Mo + (long)e * tc * cop;
    for (int c0 = 0; c0 < Ci; c0 += KC) {
      const int kc = min_i(KC, Ci - c0);
      for (int jp = 0; jp < panels; jp++) {
        const float *b = packU + ((long)(e * panels + jp) * Ci + c0) * NR;
        for (int t = 0; t < n_t; t += MR) {
          const float *a[MR];
          for (int i = 0; i < MR; i++) a[i] = t + i < n_t ? Ve + (long)(t + i) * Ci + c0 : zero;
          ukernel_rows_4x8(kc, a[0], a[1], a[2], a[3], b, Me + (long)t * cop + jp * NR, cop, min_i(MR, n_t - t), NR,
                           c0 > 0);
        }
      }
    }
  }
}

/* ---- F(4x4, 3x3) ----
 * The same convolution with 4x4 output tiles from 6x6 input patches: 36 products per tile and channel pair for 16
 * outputs (2.25 per output against F(2x2, 3x3)'s 4 and the direct sum's 9). Why: the GEMMs are most of a HarDNet
 * step and already near what f32x4 mul+add sustains (docs/bench_model.md), so fewer of them is what is left. The
 * cost is accuracy: the points 0, +-1, +-2, inf bring factors up to 8 (A) and 1/24 (G), so results differ from the
 * direct sum by more ulps than F(2x2, 3x3)'s; the kernel tests bound that against a float64 sum.
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]  (Lavin & Gray, section 4) */

/* The first `lanes` (1-4) floats at src as a vector, the rest zero; and the first `lanes` lanes of v stored at dst.
 * The 4x4-tile transforms run 4 channels per vector and take a row's last 1-3 channels through these, so that one
 * vector code path serves every channel count without reading or writing past the row. */
static inline v128_t load_lanes(const float *src, int lanes) {
  if (lanes == 4) return wasm_v128_load(src);
  float p[4] = {0.f, 0.f, 0.f, 0.f};
  for (int l = 0; l < lanes; l++) p[l] = src[l];
  return wasm_v128_load(p);
}

static inline void store_lanes(float *dst, v128_t v, int lanes) {
  if (lanes == 4) {
    wasm_v128_store(dst, v);
    return;
  }
  float p[4];
  wasm_v128_store(p, v);
  for (int l = 0; l < lanes; l++) dst[l] = p[l];
}

/* r = G g for three vectors at stride s: six at stride rs (F(4x4, 3x3)'s G, with products for its divisions) */
static inline void g3(const v128_t *g, int s, v128_t *r, int rs) {
  const v128_t g0 = g[0], g1 = g[s], g2 = g[2 * s];
  const v128_t e = wasm_f32x4_add(g0, g2);
  const v128_t e2 = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_splat(1.f / 24.f), g0),
                                   wasm_f32x4_mul(wasm_f32x4_splat(1.f / 6.f), g2));
  const v128_t o2 = wasm_f32x4_mul(wasm_f32x4_splat(1.f / 12.f), g1);
  r[0] = wasm_f32x4_mul(wasm_f32x4_splat(0.25f), g0);
  r[rs] = wasm_f32x4_mul(wasm_f32x4_splat(-1.f / 6.f), wasm_f32x4_add(e, g1));
  r[2 * rs] = wasm_f32x4_mul(wasm_f32x4_splat(-1.f / 6.f), wasm_f32x4_sub(e, g1));
  r[3 * rs] = wasm_f32x4_add(e2, o2);
  r[4 * rs] = wasm_f32x4_sub(e2, o2);
  r[5 * rs] = g2;
}

/* U = G g G^T for every (c, o), into packU[e][panel][c][NR] (columns past Co zero), 4 output channels at a time:
 * it runs once per call over every channel pair, which on the narrow-image layers (14x14, 7x7) is a large part of
 * the call, so it is vectorised and multiplies by 1/6, 1/12, 1/24 instead of dividing. */
static void transform_filter4(const float *w, int flip, int Ci, int Co, float *packU) {
  const int panels = (Co + NR - 1) / NR;
  for (int c = 0; c < Ci; c++)
    for (int o = 0; o < panels * NR; o += 4) {
      const int lanes = max_i(0, min_i(4, Co - o));
      v128_t g[9], t[18], u[36];
      for (int k = 0; k < 9; k++) {
        const int kh = k / 3, kw = k % 3;
        if (lanes == 4 && !flip) g[k] = wasm_v128_load(w + ((long)(kh * 3 + kw) * Ci + c) * Co + o);
        else {
          float p[4] = {0.f, 0.f, 0.f, 0.f};
          for (int l = 0; l < lanes; l++) p[l] = filter_tap(w, flip, kh, kw, c, o + l, Ci, Co);
          g[k] = wasm_v128_load(p); /* all zero for the panel's columns past Co */
        }
      }
      for (int j = 0; j < 3; j++) g3(g + j, 3, t + j, 3);      /* t[i][j], i < 6, j < 3 */
      for (int i = 0; i < 6; i++) g3(t + i * 3, 1, u + i * 6, 1); /* u[i][k], k < 6 */
      const int jp = o / NR, j = o % NR;
      for (int e = 0; e < 36; e++) wasm_v128_store(packU + ((long)(e * panels + jp) * Ci + c) * NR + j, u[e]);
    }
}

/* r = B^T d for six vectors at stride s (in) and rs (out) */
static inline void bt6(const v128_t *d, int s, v128_t *r, int rs) {
  const v128_t d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  const v128_t four = wasm_f32x4_splat(4.f), five = wasm_f32x4_splat(5.f), two = wasm_f32x4_splat(2.f);
  const v128_t d4m2 = wasm_f32x4_sub(d4, d2), d31 = wasm_f32x4_mul(two, wasm_f32x4_sub(d3, d1));
  r[0] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(four, d0), wasm_f32x4_mul(five, d2)), d4);
  r[rs] = wasm_f32x4_sub(wasm_f32x4_add(d3, d4), wasm_f32x4_mul(four, wasm_f32x4_add(d1, d2)));
  r[2 * rs] = wasm_f32x4_add(wasm_f32x4_sub(d4, d3), wasm_f32x4_mul(four, wasm_f32x4_sub(d1, d2)));
  r[3 * rs] = wasm_f32x4_add(d4m2, d31);
  r[4 * rs] = wasm_f32x4_sub(d4m2, d31);
  r[5 * rs] = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(four, d1), wasm_f32x4_mul(five, d3)), d5);
}

/* y = A^T m for six vectors at stride s: four outputs at stride ys */
static inline void at6(const v128_t *m, int s, v128_t *y, int ys) {
  const v128_t a = wasm_f32x4_add(m[s], m[2 * s]), b = wasm_f32x4_sub(m[s], m[2 * s]);
  const v128_t c = wasm_f32x4_add(m[3 * s], m[4 * s]), d = wasm_f32x4_sub(m[3 * s], m[4 * s]);
  y[0] = wasm_f32x4_add(wasm_f32x4_add(m[0], a), c);
  y[ys] = wasm_f32x4_add(b, wasm_f32x4_mul(wasm_f32x4_splat(2.f), d));
  y[2 * ys] = wasm_f32x4_add(a, wasm_f32x4_mul(wasm_f32x4_splat(4.f), c));
  y[3 * ys] = wasm_f32x4_add(wasm_f32x4_add(b, wasm_f32x4_mul(wasm_f32x4_splat(8.f), d)), m[5 * s]);
}

/* V = B^T d B of one 6x6 input patch, 4 channels at a time; d outside the image reads as zero. The last 1-3
 * channels go through the same vector code from a zero-padded copy, so there is one transform, not two. */
static void transform_tile4(const float *x, int H, int W, int Ci, int ih0, int iw0, float *v, long estride) {
  const float *row[6];
  int colOk[6];
  for (int i = 0; i < 6; i++) row[i] = (unsigned)(ih0 + i) < (unsigned)H ? x + (long)(ih0 + i) * W * Ci : 0;
  for (int j = 0; j < 6; j++) colOk[j] = (unsigned)(iw0 + j) < (unsigned)W;
  const v128_t z = wasm_f32x4_splat(0.f);
  for (int c = 0; c < Ci; c += 4) {
    const int lanes = min_i(4, Ci - c);
    v128_t d[36], t[36], r[36];
    for (int i = 0; i < 6; i++)
      for (int j = 0; j < 6; j++) {
        d[i * 6 + j] = row[i] && colOk[j] ? load_lanes(row[i] + (long)(iw0 + j) * Ci + c, lanes) : z;
      }
    for (int j = 0; j < 6; j++) bt6(d + j, 6, t + j, 6);
    for (int i = 0; i < 6; i++) bt6(t + i * 6, 1, r + i * 6, 1);
    for (int e = 0; e < 36; e++) store_lanes(v + e * estride + c, r[e], lanes);
  }
}

/* Y = A^T m A of one tile's 36 products, 4 output channels at a time, into the valid rows x cols of y. */
static void untransform_tile4(const float *m, long estride, float *y, int OW, int Co, int oh0, int ow0, int rows,
                              int cols) {
  for (int o = 0; o < Co; o += 4) {
    const int lanes = min_i(4, Co - o);
    v128_t mm[36], s[24], out[16];
    for (int e = 0; e < 36; e++) mm[e] = load_lanes(m + e * estride + o, lanes);
    for (int j = 0; j < 6; j++) at6(mm + j, 6, s + j, 6);      /* s[i][j], i < 4 */
    for (int i = 0; i < 4; i++) at6(s + i * 6, 1, out + i * 4, 1); /* out[i][j], j < 4 */
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++) store_lanes(y + ((long)(oh0 + i) * OW + ow0 + j) * Co + o, out[i * 4 + j], lanes);
  }
}

/* The convolution on m x m tiles (m = 2 or 4): transform a chunk of input patches, multiply, transform back. */
void conv3x3_winograd(const float *x, const float *w, float *y, int N, int H, int W, int Ci, int OH, int OW, int Co,
                      int pt, int pl, int flip, int m, char *scratch) {
  const int planes = planes_of(m), panels = (Co + NR - 1) / NR, cop = panels * NR;
  const int th = (OH + m - 1) / m, tw = (OW + m - 1) / m, tiles = N * th * tw;
  const int tc = tile_chunk(tiles, Ci, cop, planes);
  float *packU = (float *)scratch;
  float *V = packU + (long)planes * cop * Ci;  /* [planes][tc][Ci] */
  float *Mo = V + (long)planes * tc * Ci;      /* [planes][tc][cop] */
  float *zero = Mo + (long)planes * tc * cop;  /* KC zeros: the A rows of tiles past the last */
  for (int i = 0; i < KC; i++) zero[i] = 0.f;
  if (m == 4) transform_filter4(w, flip, Ci, Co, packU);
  else transform_filter(w, flip, Ci, Co, packU);
  for (int t0 = 0; t0 < tiles; t0 += tc) {
    const int n_t = min_i(tc, tiles - t0);
    for (int t = 0; t < n_t; t++) {
      const int g = t0 + t, n = g / (th * tw), r = g % (th * tw), ty = r / tw, tx = r % tw;
      const float *xn = x + (long)n * H * W * Ci;
      if (m == 4) transform_tile4(xn, H, W, Ci, 4 * ty - pt, 4 * tx - pl, V + (long)t * Ci, (long)tc * Ci);
      else transform_tile(xn, H, W, Ci, 2 * ty - pt, 2 * tx - pl, V + (long)t * Ci, (long)tc * Ci);
    }
    plane_gemms(planes, V, packU, Mo, n_t, tc, Ci, panels, zero);
    for (int t = 0; t < n_t; t++) {
      const int g = t0 + t, n = g / (th * tw), r = g % (th * tw), ty = r / tw, tx = r % tw;
      float *yn = y + (long)n * OH * OW * Co;
      const int rows = min_i(m, OH - m * ty), cols = min_i(m, OW - m * tx);
      if (m == 4) untransform_tile4(Mo + (long)t * cop, (long)tc * cop, yn, OW, Co, 4 * ty, 4 * tx, rows, cols);
      else untransform_tile(Mo + (long)t * cop, (long)tc * cop, yn, OW, Co, 2 * ty, 2 * tx, rows, cols);
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

/* m is the dy tile, 2 for F(3x3, 2x2) or 4 for F(3x3, 4x4) (chosen by the caller) */
int winograd_filter_scratch_bytes(int n, int oh, int ow, int ci, int co, int m) {
  const int planes = planes_of(m), cip = round_up(ci, MR), cop = round_up(co, NR);
  const int tc = bf_chunk(tiles_of(n, oh, ow, m));
  return (planes * cip * cop + planes * tc * cip + planes * tc * cop) * 4 + 64;
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

/* The filter gradient's products, summed over the chunk's n_t tiles into acc: for each point,
 * acc_e[c][o] (+)= sum_t Vx_e[t][c] * Vd_e[t][o] (Vx: [planes][tc][cip], Vd: [planes][tc][cop], read with strides). */
static void filter_plane_gemms(int planes, const float *Vx, const float *Vd, float *acc, int n_t, int tc, int cip,
                               int cop, int accumulate) {
  for (int e = 0; e < planes; e++)
    for (int c0 = 0; c0 < cip; c0 += MR)
      for (int o0 = 0; o0 < cop; o0 += NR) {
        const float *a = Vx + (long)e * tc * cip + c0;
        ukernel_4x8_any(n_t, a, a + 1, a + 2, a + 3, cip, Vd + (long)e * tc * cop + o0, cop,
                        acc + ((long)e * cip + c0) * cop + o0, cop, MR, NR, accumulate);
      }
}

/* dw = A^T m A for every (c, o) of F(3x3, 2x2)'s 16 sums */
static void untransform_filter2(const float *acc, float *dw, int Ci, int Co, int cip, int cop) {
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

/* ---- Filter gradient by F(3x3, 4x4) ----
 * The same sum over 4x4 tiles of dy and the 6x6 patches of x under them: 36 products per tile and (c, o) for 16
 * dy pixels instead of 16 for 4. Minimal filtering F(3, 4) on F(4x4, 3x3)'s points 0, 1, -1, 2, -2, inf: its B^T
 * (which depends only on the points) is F(4x4, 3x3)'s, so the x patches go through transform_tile4, and
 *   G = [1/4 0 0 0; -1/6 -1/6 -1/6 -1/6; -1/6 1/6 -1/6 1/6; 1/24 1/12 1/6 1/3; 1/24 -1/12 1/6 -1/3; 0 0 0 1],
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 1]. */

/* r = G g for four vectors at stride s: six at stride rs */
static inline void g4(const v128_t *g, int s, v128_t *r, int rs) {
  const v128_t g0 = g[0], g1 = g[s], g2 = g[2 * s], g3 = g[3 * s];
  const v128_t sixth = wasm_f32x4_splat(-1.f / 6.f);
  const v128_t e = wasm_f32x4_add(g0, g2), o = wasm_f32x4_add(g1, g3);
  const v128_t e2 = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_splat(1.f / 24.f), g0),
                                   wasm_f32x4_mul(wasm_f32x4_splat(1.f / 6.f), g2));
  const v128_t o2 = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_splat(1.f / 12.f), g1),
                                   wasm_f32x4_mul(wasm_f32x4_splat(1.f / 3.f), g3));
  r[0] = wasm_f32x4_mul(wasm_f32x4_splat(0.25f), g0);
  r[rs] = wasm_f32x4_mul(sixth, wasm_f32x4_add(e, o));
  r[2 * rs] = wasm_f32x4_mul(sixth, wasm_f32x4_sub(e, o));
  r[3 * rs] = wasm_f32x4_add(e2, o2);
  r[4 * rs] = wasm_f32x4_sub(e2, o2);
  r[5 * rs] = g3;
}

/* G g G^T of one 4x4 dy tile (entries past the image are zero), 4 output channels at a time. */
static void transform_dy_tile4(const float *dy, int OH, int OW, int Co, int oh0, int ow0, float *v, long estride) {
  const float *px[16];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      px[i * 4 + j] = oh0 + i < OH && ow0 + j < OW ? dy + ((long)(oh0 + i) * OW + ow0 + j) * Co : 0;
  const v128_t z = wasm_f32x4_splat(0.f);
  for (int o = 0; o < Co; o += 4) {
    const int lanes = min_i(4, Co - o);
    v128_t d[16], t[24], r[36];
    for (int k = 0; k < 16; k++) d[k] = px[k] ? load_lanes(px[k] + o, lanes) : z;
    for (int j = 0; j < 4; j++) g4(d + j, 4, t + j, 4);      /* t[i][j], i < 6, j < 4 */
    for (int i = 0; i < 6; i++) g4(t + i * 4, 1, r + i * 6, 1); /* r[i][k], k < 6 */
    for (int e = 0; e < 36; e++) store_lanes(v + e * estride + o, r[e], lanes);
  }
}

/* y = A^T m (3 of 6) for six vectors at stride s: three at stride ys */
static inline void at3(const v128_t *m, int s, v128_t *y, int ys) {
  const v128_t a = wasm_f32x4_add(m[s], m[2 * s]), b = wasm_f32x4_sub(m[s], m[2 * s]);
  const v128_t c = wasm_f32x4_add(m[3 * s], m[4 * s]), d = wasm_f32x4_sub(m[3 * s], m[4 * s]);
  y[0] = wasm_f32x4_add(wasm_f32x4_add(m[0], a), c);
  y[ys] = wasm_f32x4_add(b, wasm_f32x4_mul(wasm_f32x4_splat(2.f), d));
  y[2 * ys] = wasm_f32x4_add(wasm_f32x4_add(a, wasm_f32x4_mul(wasm_f32x4_splat(4.f), c)), m[5 * s]);
}

/* dw = A^T m A for every (c, o) of F(3x3, 4x4)'s 36 sums, 4 output channels at a time */
static void untransform_filter4(const float *acc, float *dw, int Ci, int Co, int cip, int cop) {
  for (int c = 0; c < Ci; c++)
    for (int o = 0; o < Co; o += 4) {
      const int lanes = min_i(4, Co - o);
      v128_t mm[36], s[18], out[9];
      /* acc rows are cop wide, so 4 lanes from o < Co always lie inside the row */
      for (int e = 0; e < 36; e++) mm[e] = wasm_v128_load(acc + ((long)e * cip + c) * cop + o);
      for (int j = 0; j < 6; j++) at3(mm + j, 6, s + j, 6);      /* s[i][j], i < 3 */
      for (int i = 0; i < 3; i++) at3(s + i * 6, 1, out + i * 3, 1); /* out[i][j], j < 3 */
      for (int k = 0; k < 9; k++) store_lanes(dw + ((long)k * Ci + c) * Co + o, out[k], lanes);
    }
}

/* The filter gradient over m x m tiles of dy (m = 2 or 4): transform a chunk of x patches and dy tiles, sum their
 * products over all chunks, transform the sums back into dw. */
void conv3x3_winograd_filter(const float *x, const float *dy, float *dw, int N, int H, int W, int Ci, int OH, int OW,
                             int Co, int pt, int pl, int m, char *scratch) {
  const int planes = planes_of(m), cip = round_up(Ci, MR), cop = round_up(Co, NR);
  const int th = (OH + m - 1) / m, tw = (OW + m - 1) / m, tiles = N * th * tw, tc = bf_chunk(tiles);
  float *acc = (float *)scratch;                /* [planes][cip][cop] */
  float *Vx = acc + (long)planes * cip * cop;   /* [planes][tc][cip] */
  float *Vd = Vx + (long)planes * tc * cip;     /* [planes][tc][cop] */
  for (int t0 = 0; t0 < tiles; t0 += tc) {
    const int n_t = min_i(tc, tiles - t0);
    for (int t = 0; t < n_t; t++) {
      const int g = t0 + t, n = g / (th * tw), r = g % (th * tw), ty = r / tw, tx = r % tw;
      const float *xn = x + (long)n * H * W * Ci, *dyn = dy + (long)n * OH * OW * Co;
      float *vx = Vx + (long)t * cip, *vd = Vd + (long)t * cop;
      if (m == 4) {
        transform_tile4(xn, H, W, Ci, 4 * ty - pt, 4 * tx - pl, vx, (long)tc * cip);
        transform_dy_tile4(dyn, OH, OW, Co, 4 * ty, 4 * tx, vd, (long)tc * cop);
      } else {
        transform_tile(xn, H, W, Ci, 2 * ty - pt, 2 * tx - pl, vx, (long)tc * cip);
        transform_dy_tile(dyn, OH, OW, Co, 2 * ty, 2 * tx, vd, (long)tc * cop);
      }
    }
    filter_plane_gemms(planes, Vx, Vd, acc, n_t, tc, cip, cop, t0 > 0);
  }
  if (m == 4) untransform_filter4(acc, dw, Ci, Co, cip, cop);
  else untransform_filter2(acc, dw, Ci, Co, cip, cop);
}
