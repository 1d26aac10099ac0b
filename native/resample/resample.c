/*
 * The train transforms' crop resample, flip and normalisation in one pass (WebAssembly SIMD): an RGB uint8 crop
 * of sw x sh pixels becomes ow x oh float32 HWC values out = lut[c][round(resampled)], mirrored when asked, written where the caller says (worker/data/resample.ts copies them into the batch).
 *
 * The kernel is libvips' `linear` one as sharp's resize(..., {kernel: 'linear'}) runs it: per axis a triangle of
 * half-width max(1, in/out) centred on (o + 0.5) * in/out - 0.5, normalised to sum 1, edge pixels repeated. When
 * shrinking that is libvips' reduceh/reducev (anti-aliased), when enlarging it is plain bilinear with centre
 * alignment, as libvips' affine does. Fixed point like libvips (weights in 1/16384, pairs of taps per i16x8 dot
 * product), but the intermediate (vertical pass) keeps 6 fractional bits where libvips rounds it to uint8, so
 * values agree with sharp's to a fraction of a grey level, not bit for bit; the final rounding to uint8 before the
 * lookup keeps NormalizeImage exactly what it is on a decoded uint8 image.
 *
 * Why by hand: on a 500x375 JPEG sharp's resize of a random crop to 224x224 costs 1-2 ms of CPU (a second
 * libvips operation, its affine path per pixel when enlarging), more than decoding the file; V8 does not
 * vectorise typed-array loops (a JS version ran at 3-7 ms, a float32 f32x4 version of this file at ~1 ms). Here the
 * vertical pass is one i32x4.dot_i16x8 per two taps per 4 bytes of contiguous rows, the horizontal pass one per
 * two taps per pixel (R, G, B and a lane with weight 0).
 */
#include <stdint.h>
#include <wasm_simd128.h>

/* weights in 1/2^WB; the vertical pass keeps VB fractional bits */
#define WB 14
#define VB 6

/*
 * Per-axis taps: output o reads the K source pixels first[o] .. first[o] + K - 1 with weights w[o*K + k] (summing
 * to exactly 2^WB). The triangle is nonzero on the open interval (c - s, c + s), which holds at most ceil(2s)
 * integers. `first` may run up to K pixels past either edge: the caller repeats edge pixels there (libvips'
 * extend copy).
 */
static int taps_k(int in, int out) {
  double r = (double)in / out;
  return (int)__builtin_ceil(2 * (r > 1 ? r : 1));
}

static void make_taps(int in, int out, int K, int32_t *first, int16_t *w) {
  double r = (double)in / out;
  double support = r > 1 ? r : 1;
  for (int o = 0; o < out; o++) {
    double c = (o + 0.5) * r - 0.5;
    int f = (int)__builtin_floor(c - support) + 1;
    double sum = 0;
    for (int k = 0; k < K; k++) {
      double d = f + k - c;
      double t = 1 - (d < 0 ? -d : d) / support;
      sum += t > 0 ? t : 0;
    }
    int total = 0, big = 0;
    for (int k = 0; k < K; k++) {
      double d = f + k - c;
      double t = 1 - (d < 0 ? -d : d) / support;
      int q = (int)__builtin_floor((t > 0 ? t : 0) / sum * (1 << WB) + 0.5);
      w[o * K + k] = (int16_t)q;
      total += q;
      if (q > w[o * K + big]) big = k;
    }
    w[o * K + big] = (int16_t)(w[o * K + big] + (1 << WB) - total);
    first[o] = f;
  }
}

/* scratch bytes resample_rgb needs for these sizes */
unsigned scratch_bytes(int sw, int sh, int ow, int oh) {
  int kx = taps_k(sw, ow), ky = taps_k(sh, oh);
  int px = (kx + 1) / 2;
  return (unsigned)(ow * 4 + ow * kx * 2 + ow * px * 16 + oh * 4 + oh * ky * 2 + ((sw + 2 * kx + 8) * 3) * 2 + 128);
}

static inline v128_t pair(int16_t a, int16_t b) { return wasm_i32x4_splat((int32_t)((uint32_t)(uint16_t)a | ((uint32_t)(uint16_t)b << 16))); }

/*
 * src: sw*sh*3 bytes; lut: 3*256 floats (per channel); dst: ow*oh*3 floats; scratch: scratch_bytes() bytes.
 * flip: bit 0 mirrors left-right, bit 1 top-bottom (cv2.flip codes 1, 0, -1 are 1, 2, 3).
 */
void resample_rgb(const uint8_t *src, int sw, int sh, float *dst, int ow, int oh, int flip, const float *lut, uint8_t *scratch) {
  const int kx = taps_k(sw, ow), ky = taps_k(sh, oh);
  const int px = (kx + 1) / 2;
  uint8_t *p = (uint8_t *)(((uintptr_t)scratch + 15) & ~(uintptr_t)15);
  v128_t *wxp = (v128_t *)p; p += ow * px * 16;            /* per pixel, per pair of taps: (w0 w1 w0 w1 w0 w1 0 0) */
  int32_t *fx = (int32_t *)p; p += ow * 4;
  int16_t *wx = (int16_t *)p; p += ow * kx * 2;
  int32_t *fy = (int32_t *)p; p += oh * 4;
  int16_t *wy = (int16_t *)p; p += oh * ky * 2;
  int16_t *padded = (int16_t *)(((uintptr_t)p + 15) & ~(uintptr_t)15);
  make_taps(sw, ow, kx, fx, wx);
  make_taps(sh, oh, ky, fy, wy);
  for (int x = 0; x < ow; x++) {
    for (int j = 0; j < px; j++) {
      int16_t a = wx[x * kx + 2 * j], b = 2 * j + 1 < kx ? wx[x * kx + 2 * j + 1] : 0;
      wxp[x * px + j] = wasm_i16x8_make(a, b, a, b, a, b, 0, 0);
    }
  }
  const int n = sw * 3;
  /* the row (value << VB, int16) with kx repeated edge pixels on each side and 8 spare values at the end */
  int16_t *row = padded + kx * 3;
  for (int i = 0; i < 8; i++) row[n + kx * 3 + i] = 0;
  const v128_t vround = wasm_i32x4_splat(1 << (WB - VB - 1)), hround = wasm_i32x4_splat(1 << (WB + VB - 1));
  const v128_t top = wasm_i32x4_splat(255);
  for (int y = 0; y < oh; y++) {
    const int16_t *vy = wy + y * ky;
    /* vertical pass, two taps per dot product, 16 bytes at a time */
    int i = 0;
    for (; i + 16 <= n; i += 16) {
      v128_t a0 = wasm_i32x4_splat(0), a1 = a0, a2 = a0, a3 = a0;
      for (int k = 0; k < ky; k += 2) {
        int r0 = fy[y] + k, r1 = r0 + 1;
        const uint8_t *s0 = src + (r0 < 0 ? 0 : r0 >= sh ? sh - 1 : r0) * n;
        const uint8_t *s1 = k + 1 < ky ? src + (r1 < 0 ? 0 : r1 >= sh ? sh - 1 : r1) * n : s0;
        v128_t w = pair(vy[k], k + 1 < ky ? vy[k + 1] : 0);
        v128_t A = wasm_v128_load(s0 + i), B = wasm_v128_load(s1 + i);
        v128_t lo = wasm_i8x16_shuffle(A, B, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        v128_t hi = wasm_i8x16_shuffle(A, B, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        a0 = wasm_i32x4_add(a0, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(lo), w));
        a1 = wasm_i32x4_add(a1, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(lo), w));
        a2 = wasm_i32x4_add(a2, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_low_u8x16(hi), w));
        a3 = wasm_i32x4_add(a3, wasm_i32x4_dot_i16x8(wasm_u16x8_extend_high_u8x16(hi), w));
      }
      a0 = wasm_i32x4_shr(wasm_i32x4_add(a0, vround), WB - VB);
      a1 = wasm_i32x4_shr(wasm_i32x4_add(a1, vround), WB - VB);
      a2 = wasm_i32x4_shr(wasm_i32x4_add(a2, vround), WB - VB);
      a3 = wasm_i32x4_shr(wasm_i32x4_add(a3, vround), WB - VB);
      wasm_v128_store(row + i, wasm_i16x8_narrow_i32x4(a0, a1));
      wasm_v128_store(row + i + 8, wasm_i16x8_narrow_i32x4(a2, a3));
    }
    for (; i < n; i++) {
      int a = 0;
      for (int k = 0; k < ky; k++) {
        int r = fy[y] + k;
        a += vy[k] * src[(r < 0 ? 0 : r >= sh ? sh - 1 : r) * n + i];
      }
      row[i] = (int16_t)((a + (1 << (WB - VB - 1))) >> (WB - VB));
    }
    for (int q = 1; q <= kx; q++) {
      for (int c = 0; c < 3; c++) {
        row[-3 * q + c] = row[c];
        row[n - 3 + 3 * q + c] = row[n - 3 + c];
      }
    }
    /* horizontal pass: per pixel, per pair of taps, (R0 R1 G0 G1 B0 B1 . .) . (w0 w1 w0 w1 w0 w1 0 0) */
    float *out = dst + (long)(flip & 2 ? oh - 1 - y : y) * ow * 3;
    int step = 3, o0 = 0;
    if (flip & 1) {
      step = -3;
      o0 = (ow - 1) * 3;
    }
    for (int x = 0; x < ow; x++) {
      const int16_t *s = row + fx[x] * 3;
      const v128_t *w = wxp + x * px;
      v128_t a = wasm_i32x4_splat(0);
      for (int j = 0; j < px; j++) {
        v128_t d = wasm_v128_load(s + 6 * j);
        a = wasm_i32x4_add(a, wasm_i32x4_dot_i16x8(wasm_i8x16_shuffle(d, d, 0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11, 0, 1, 0, 1), w[j]));
      }
      v128_t q = wasm_i32x4_min(wasm_i32x4_shr(wasm_i32x4_add(a, hround), WB + VB), top);
      float *o = out + o0 + x * step;
      o[0] = lut[wasm_i32x4_extract_lane(q, 0)];
      o[1] = lut[256 + wasm_i32x4_extract_lane(q, 1)];
      o[2] = lut[512 + wasm_i32x4_extract_lane(q, 2)];
    }
  }
}
