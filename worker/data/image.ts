/**
 * The image values that flow through a transform list.
 *
 * - RawImage: decoded RGB, HWC, uint8 (what OpenCV gives PaddleClas after DecodeImage).
 * - FloatImage: float32 after NormalizeImage / ToCHWImage, in HWC or CHW layout.
 */
export interface RawImage {
  kind: 'raw';
  /** RGB HWC uint8, length width*height*3 */
  data: Uint8Array;
  width: number;
  height: number;
}

export interface FloatImage {
  kind: 'float';
  data: Float32Array;
  width: number;
  height: number;
  channels: number;
  layout: 'HWC' | 'CHW';
}

export function rawImage(data: Uint8Array, width: number, height: number): RawImage {
  if (data.length !== width * height * 3) {
    throw new RangeError(`rawImage: ${data.length} bytes is not ${width}x${height}x3`);
  }
  return { kind: 'raw', data, width, height };
}

/** uint8 RGB HWC -> float32 HWC without scaling (ToCHWImage on an unnormalized image). */
export function rawToFloat(img: RawImage): FloatImage {
  return {
    kind: 'float',
    data: Float32Array.from(img.data),
    width: img.width,
    height: img.height,
    channels: 3,
    layout: 'HWC',
  };
}

export function hwcToChw(img: FloatImage): FloatImage {
  if (img.layout === 'CHW') return img;
  const { width: w, height: h, channels: c } = img;
  const out = new Float32Array(img.data.length);
  const plane = w * h;
  for (let p = 0; p < plane; p++) for (let k = 0; k < c; k++) out[k * plane + p] = img.data[p * c + k];
  return { ...img, data: out, layout: 'CHW' };
}

export function chwToHwc(img: FloatImage): FloatImage {
  if (img.layout === 'HWC') return img;
  const { width: w, height: h, channels: c } = img;
  const out = new Float32Array(img.data.length);
  const plane = w * h;
  for (let p = 0; p < plane; p++) for (let k = 0; k < c; k++) out[p * c + k] = img.data[k * plane + p];
  return { ...img, data: out, layout: 'HWC' };
}

/** OpenCV cv2.flip on HWC uint8, in place (1 horizontal, 0 vertical, -1 both): no new 150 KB buffer per image. */
export function flipRaw(img: RawImage, flipCode: number): RawImage {
  const { width: w, height: h, data } = img;
  if (flipCode !== 0) {
    for (let y = 0; y < h; y++) {
      const row = y * w * 3;
      for (let a = row, b = row + (w - 1) * 3; a < b; a += 3, b -= 3) {
        for (let c = 0; c < 3; c++) {
          const t = data[a + c];
          data[a + c] = data[b + c];
          data[b + c] = t;
        }
      }
    }
  }
  if (flipCode <= 0) {
    const tmp = new Uint8Array(w * 3);
    for (let top = 0, bottom = h - 1; top < bottom; top++, bottom--) {
      const a = top * w * 3;
      const b = bottom * w * 3;
      tmp.set(data.subarray(a, a + w * 3));
      data.copyWithin(a, b, b + w * 3);
      data.set(tmp, b);
    }
  }
  return img;
}
