/**
 * AutoAugment, ImageNet policy, as PaddleClas ships it (DeepVoltaire's PIL implementation): one of 25
 * sub-policies is picked uniformly; each applies two operations, each with its own probability and magnitude
 * index into a 10-step range; geometric ops fill with grey (128, 128, 128).
 *
 * The operations are written here on RGB HWC uint8 because they are PIL's exact integer formulas (LUTs,
 * histograms, 3x3 smoothing, L = 0.299R+0.587G+0.114B in 16-bit fixed point) that neither sharp nor libvips
 * reproduce. Geometric ops sample bilinearly (PIL uses nearest for rotate, bicubic for shear).
 */
import type { Rng } from '../../shared/rng.js';
import type { RawImage } from './image.js';

type OpName =
  | 'shearX'
  | 'shearY'
  | 'translateX'
  | 'translateY'
  | 'rotate'
  | 'color'
  | 'posterize'
  | 'solarize'
  | 'contrast'
  | 'sharpness'
  | 'brightness'
  | 'autocontrast'
  | 'equalize'
  | 'invert';

function linspace(a: number, b: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
}

const RANGES: Record<OpName, number[]> = {
  shearX: linspace(0, 0.3, 10),
  shearY: linspace(0, 0.3, 10),
  translateX: linspace(0, 150 / 331, 10),
  translateY: linspace(0, 150 / 331, 10),
  rotate: linspace(0, 30, 10),
  color: linspace(0, 0.9, 10),
  posterize: linspace(8, 4, 10).map((v) => Math.round(v)),
  solarize: linspace(256, 0, 10),
  contrast: linspace(0, 0.9, 10),
  sharpness: linspace(0, 0.9, 10),
  brightness: linspace(0, 0.9, 10),
  autocontrast: new Array(10).fill(0),
  equalize: new Array(10).fill(0),
  invert: new Array(10).fill(0),
};

type SubPolicy = [number, OpName, number, number, OpName, number];

export const IMAGENET_POLICY: SubPolicy[] = [
  [0.4, 'posterize', 8, 0.6, 'rotate', 9],
  [0.6, 'solarize', 5, 0.6, 'autocontrast', 5],
  [0.8, 'equalize', 8, 0.6, 'equalize', 3],
  [0.6, 'posterize', 7, 0.6, 'posterize', 6],
  [0.4, 'equalize', 7, 0.2, 'solarize', 4],
  [0.4, 'equalize', 4, 0.8, 'rotate', 8],
  [0.6, 'solarize', 3, 0.6, 'equalize', 7],
  [0.8, 'posterize', 5, 1.0, 'equalize', 2],
  [0.2, 'rotate', 3, 0.6, 'solarize', 8],
  [0.6, 'equalize', 8, 0.4, 'posterize', 6],
  [0.8, 'rotate', 8, 0.4, 'color', 0],
  [0.4, 'rotate', 9, 0.6, 'equalize', 2],
  [0.0, 'equalize', 7, 0.8, 'equalize', 8],
  [0.6, 'invert', 4, 1.0, 'equalize', 8],
  [0.6, 'color', 4, 1.0, 'contrast', 8],
  [0.8, 'rotate', 8, 1.0, 'color', 2],
  [0.8, 'color', 8, 0.8, 'solarize', 7],
  [0.4, 'sharpness', 7, 0.6, 'invert', 8],
  [0.6, 'shearX', 5, 1.0, 'equalize', 9],
  [0.4, 'color', 0, 0.6, 'equalize', 3],
  [0.4, 'equalize', 7, 0.2, 'solarize', 4],
  [0.6, 'solarize', 5, 0.6, 'autocontrast', 5],
  [0.6, 'invert', 4, 1.0, 'equalize', 8],
  [0.6, 'color', 4, 1.0, 'contrast', 8],
  [0.8, 'equalize', 8, 0.6, 'equalize', 3],
];

const FILL = 128;

function mapLut(img: RawImage, luts: Uint8Array[]): RawImage {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i += 3) {
    out[i] = luts[0][img.data[i]];
    out[i + 1] = luts[1][img.data[i + 1]];
    out[i + 2] = luts[2][img.data[i + 2]];
  }
  return { ...img, data: out };
}

function sameLut(f: (v: number) => number): Uint8Array[] {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = f(v);
  return [lut, lut, lut];
}

function histograms(img: RawImage): Uint32Array[] {
  const h = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)];
  for (let i = 0; i < img.data.length; i += 3) {
    h[0][img.data[i]]++;
    h[1][img.data[i + 1]]++;
    h[2][img.data[i + 2]]++;
  }
  return h;
}

/** PIL ImageOps.autocontrast(cutoff=0) */
export function autocontrast(img: RawImage): RawImage {
  const luts = histograms(img).map((h) => {
    let lo = 0;
    while (lo < 256 && h[lo] === 0) lo++;
    let hi = 255;
    while (hi >= 0 && h[hi] === 0) hi--;
    const lut = new Uint8Array(256);
    if (hi <= lo) {
      for (let v = 0; v < 256; v++) lut[v] = v;
      return lut;
    }
    const scale = 255 / (hi - lo);
    const offset = -lo * scale;
    for (let v = 0; v < 256; v++) lut[v] = Math.min(255, Math.max(0, Math.trunc(v * scale + offset)));
    return lut;
  });
  return mapLut(img, luts);
}

/** PIL ImageOps.equalize */
export function equalize(img: RawImage): RawImage {
  const luts = histograms(img).map((h) => {
    const lut = new Uint8Array(256);
    const nonzero = Array.from(h).filter((c) => c > 0);
    const total = nonzero.reduce((a, b) => a + b, 0);
    const step = nonzero.length <= 1 ? 0 : Math.floor((total - nonzero[nonzero.length - 1]) / 255);
    if (step === 0) {
      for (let v = 0; v < 256; v++) lut[v] = v;
      return lut;
    }
    let n = Math.floor(step / 2);
    for (let v = 0; v < 256; v++) {
      lut[v] = Math.min(255, Math.floor(n / step));
      n += h[v];
    }
    return lut;
  });
  return mapLut(img, luts);
}

/** PIL Image.blend(degenerate, img, factor) with its truncating clip */
function blend(degenerate: Uint8Array | number, img: RawImage, factor: number): RawImage {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) {
    const d = typeof degenerate === 'number' ? degenerate : degenerate[i];
    const v = d + factor * (img.data[i] - d);
    out[i] = v <= 0 ? 0 : v < 256 ? Math.trunc(v) : 255;
  }
  return { ...img, data: out };
}

function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

function greyOf(img: RawImage): Uint8Array {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i += 3) {
    const l = luma(img.data[i], img.data[i + 1], img.data[i + 2]);
    out[i] = out[i + 1] = out[i + 2] = l;
  }
  return out;
}

function meanLuma(img: RawImage): number {
  let s = 0;
  for (let i = 0; i < img.data.length; i += 3) s += luma(img.data[i], img.data[i + 1], img.data[i + 2]);
  return Math.trunc(s / (img.width * img.height) + 0.5);
}

/** PIL ImageFilter.SMOOTH (3x3, centre 5, /13), border pixels copied */
function smooth(img: RawImage): Uint8Array {
  const { width: w, height: h, data } = img;
  const out = Uint8Array.from(data);
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 4 * data[(y * w + x) * 3 + c];
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += data[((y + dy) * w + x + dx) * 3 + c];
        out[(y * w + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(s / 13)));
      }
    }
  }
  return out;
}

/** Inverse-map affine warp: output (x, y) samples input (a*x + b*y + c, d*x + e*y + f), pixel centres, grey fill. */
function affine(img: RawImage, m: [number, number, number, number, number, number]): RawImage {
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(data.length);
  const [a, b, c, d, e, f] = m;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sx = a * (x + 0.5) + b * (y + 0.5) + c - 0.5;
      const sy = d * (x + 0.5) + e * (y + 0.5) + f - 0.5;
      const o = (y * w + x) * 3;
      if (sx < -0.5 || sy < -0.5 || sx > w - 0.5 || sy > h - 0.5) {
        out[o] = out[o + 1] = out[o + 2] = FILL;
        continue;
      }
      const x0 = Math.max(0, Math.min(w - 1, Math.floor(sx)));
      const y0 = Math.max(0, Math.min(h - 1, Math.floor(sy)));
      const x1 = Math.min(w - 1, x0 + 1);
      const y1 = Math.min(h - 1, y0 + 1);
      const fx = Math.max(0, Math.min(1, sx - x0));
      const fy = Math.max(0, Math.min(1, sy - y0));
      for (let ch = 0; ch < 3; ch++) {
        const v00 = data[(y0 * w + x0) * 3 + ch];
        const v01 = data[(y0 * w + x1) * 3 + ch];
        const v10 = data[(y1 * w + x0) * 3 + ch];
        const v11 = data[(y1 * w + x1) * 3 + ch];
        const v = (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy;
        out[o + ch] = Math.round(v);
      }
    }
  }
  return { ...img, data: out };
}

/** PIL rotate(deg): counter-clockwise about the centre, same size */
function rotate(img: RawImage, deg: number): RawImage {
  const t = (-deg * Math.PI) / 180;
  const cx = img.width / 2;
  const cy = img.height / 2;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  // inverse map: input = R(-angle) applied about the centre (PIL's convention for its rotate matrix)
  return affine(img, [cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy]);
}

export function applyOp(img: RawImage, op: OpName, magnitude: number, rng: Rng): RawImage {
  const sign = () => rng.choice([-1, 1]);
  switch (op) {
    case 'shearX':
      return affine(img, [1, magnitude * sign(), 0, 0, 1, 0]);
    case 'shearY':
      return affine(img, [1, 0, 0, magnitude * sign(), 1, 0]);
    case 'translateX':
      return affine(img, [1, 0, magnitude * img.width * sign(), 0, 1, 0]);
    case 'translateY':
      return affine(img, [1, 0, 0, 0, 1, magnitude * img.height * sign()]);
    case 'rotate':
      return rotate(img, magnitude * sign());
    case 'color':
      return blend(greyOf(img), img, 1 + magnitude * sign());
    case 'posterize': {
      const mask = ~((1 << (8 - magnitude)) - 1) & 0xff;
      return mapLut(
        img,
        sameLut((v) => v & mask),
      );
    }
    case 'solarize':
      return mapLut(
        img,
        sameLut((v) => (v < magnitude ? v : 255 - v)),
      );
    case 'contrast':
      return blend(meanLuma(img), img, 1 + magnitude * sign());
    case 'sharpness':
      return blend(smooth(img), img, 1 + magnitude * sign());
    case 'brightness':
      return blend(0, img, 1 + magnitude * sign());
    case 'autocontrast':
      return autocontrast(img);
    case 'equalize':
      return equalize(img);
    case 'invert':
      return mapLut(
        img,
        sameLut((v) => 255 - v),
      );
  }
}

/** ImageNetPolicy.__call__: pick a sub-policy, apply each of its two ops with its probability. */
export function autoAugmentImageNet(img: RawImage, rng: Rng): RawImage {
  const [p1, op1, m1, p2, op2, m2] = IMAGENET_POLICY[rng.randint(0, IMAGENET_POLICY.length - 1)];
  if (rng.random() < p1) img = applyOp(img, op1, RANGES[op1][m1], rng);
  if (rng.random() < p2) img = applyOp(img, op2, RANGES[op2][m2], rng);
  return img;
}
