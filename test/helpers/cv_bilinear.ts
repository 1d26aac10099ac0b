/**
 * cv2.resize(..., interpolation=INTER_LINEAR) on RGB HWC pixels: half-pixel centres, no anti-aliasing, edges
 * clamped. PaddleClas resizes with it, so it is the reference the transform tests hold resized pixels to.
 */
export function cvBilinear(src: ArrayLike<number>, w: number, h: number, ow: number, oh: number): Float32Array {
  const out = new Float32Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    const sy = Math.min(Math.max((y + 0.5) * (h / oh) - 0.5, 0), h - 1);
    const y0 = Math.floor(sy),
      y1 = Math.min(h - 1, y0 + 1),
      fy = sy - y0;
    for (let x = 0; x < ow; x++) {
      const sx = Math.min(Math.max((x + 0.5) * (w / ow) - 0.5, 0), w - 1);
      const x0 = Math.floor(sx),
        x1 = Math.min(w - 1, x0 + 1),
        fx = sx - x0;
      for (let c = 0; c < 3; c++) {
        const v = (i: number, j: number) => src[(i * w + j) * 3 + c];
        out[(y * ow + x) * 3 + c] =
          (v(y0, x0) * (1 - fx) + v(y0, x1) * fx) * (1 - fy) + (v(y1, x0) * (1 - fx) + v(y1, x1) * fx) * fy;
      }
    }
  }
  return out;
}
