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
    throw new Error(`rawImage: ${data.length} bytes is not ${width}x${height}x3`);
  }
  return { kind: 'raw', data, width, height };
}

/** uint8 RGB HWC -> float32 HWC without scaling (ToCHWImage on an unnormalized image). */
export function rawToFloat(img: RawImage): FloatImage {
  return { kind: 'float', data: Float32Array.from(img.data), width: img.width, height: img.height, channels: 3, layout: 'HWC' };
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

/** OpenCV cv2.flip on HWC uint8: 1 horizontal, 0 vertical, -1 both. */
export function flipRaw(img: RawImage, flipCode: number): RawImage {
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(data.length);
  const horizontal = flipCode > 0 || flipCode < 0;
  const vertical = flipCode === 0 || flipCode < 0;
  for (let y = 0; y < h; y++) {
    const sy = vertical ? h - 1 - y : y;
    const srcRow = sy * w * 3;
    const dstRow = y * w * 3;
    if (!horizontal) {
      out.set(data.subarray(srcRow, srcRow + w * 3), dstRow);
      continue;
    }
    for (let x = 0; x < w; x++) {
      const s = srcRow + (w - 1 - x) * 3;
      const d = dstRow + x * 3;
      out[d] = data[s];
      out[d + 1] = data[s + 1];
      out[d + 2] = data[s + 2];
    }
  }
  return { kind: 'raw', data: out, width: w, height: h };
}
