/**
 * PaddleClas's batch operators (TRAIN.mix with use_mix: True): MixupOperator and CutmixOperator. One lam per
 * batch, lam ~ Beta(alpha, alpha); the batch is mixed with a random permutation of itself, and the loss becomes
 * lam * CE(labels) + (1 - lam) * CE(labels[perm]).
 *
 * Beta sampling is written here (X / (X + Y) with X, Y ~ Gamma(alpha), Marsaglia-Tsang) because it takes a dozen
 * lines and must draw from the project's seeded generator so that runs and resumes repeat exactly.
 */
import { ConfigError } from '../../shared/errors.js';
import type { Rng } from '../../shared/rng.js';

export interface MixedBatch {
  images: Float32Array;
  /** labels[perm]: the second target */
  labelsB: Int32Array;
  /** weight of the first target */
  lam: number;
}

function normal(rng: Rng): number {
  const u = 1 - rng.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.random());
}

/** Gamma(shape, 1), Marsaglia and Tsang (2000); shape < 1 via Gamma(shape + 1) * U^(1/shape). */
export function sampleGamma(shape: number, rng: Rng): number {
  if (shape < 1) return sampleGamma(shape + 1, rng) * (1 - rng.random()) ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.random();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

export function sampleBeta(a: number, b: number, rng: Rng): number {
  const x = sampleGamma(a, rng);
  return x / (x + sampleGamma(b, rng));
}

/** Fisher-Yates permutation of 0..n-1 */
function permutation(n: number, rng: Rng): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.randint(0, i);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** x = lam * x + (1 - lam) * x[perm] over a batch of NHWC images. */
export function mixup(
  images: Float32Array,
  labels: Int32Array,
  shape: [number, number, number, number],
  alpha: number,
  rng: Rng,
): MixedBatch {
  const lam = sampleBeta(alpha, alpha, rng);
  const perm = permutation(shape[0], rng);
  const per = shape[1] * shape[2] * shape[3];
  const out = new Float32Array(images.length);
  for (let i = 0; i < shape[0]; i++) {
    const a = i * per;
    const b = perm[i] * per;
    for (let k = 0; k < per; k++) out[a + k] = lam * images[a + k] + (1 - lam) * images[b + k];
  }
  return { images: out, labelsB: Int32Array.from(perm, (j) => labels[j]), lam };
}

/** The box PaddleClas cuts: side ratio sqrt(1 - lam), centre uniform over the image, clipped to it. */
export function cutmixBox(
  h: number,
  w: number,
  lam: number,
  rng: Rng,
): { y1: number; y2: number; x1: number; x2: number } {
  const ratio = Math.sqrt(1 - lam);
  const cutH = Math.trunc(h * ratio);
  const cutW = Math.trunc(w * ratio);
  const cy = rng.randint(0, h - 1);
  const cx = rng.randint(0, w - 1);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  return {
    y1: clip(cy - (cutH >> 1), h),
    y2: clip(cy + (cutH >> 1), h),
    x1: clip(cx - (cutW >> 1), w),
    x2: clip(cx + (cutW >> 1), w),
  };
}

/** Paste a box of x[perm] into x; lam corrected to 1 - box area / image area. */
export function cutmix(
  images: Float32Array,
  labels: Int32Array,
  shape: [number, number, number, number],
  alpha: number,
  rng: Rng,
): MixedBatch {
  const [n, h, w, c] = shape;
  const box = cutmixBox(h, w, sampleBeta(alpha, alpha, rng), rng);
  const perm = permutation(n, rng);
  const out = Float32Array.from(images);
  const per = h * w * c;
  for (let i = 0; i < n; i++) {
    for (let y = box.y1; y < box.y2; y++) {
      const row = (y * w + box.x1) * c;
      const len = (box.x2 - box.x1) * c;
      out.set(images.subarray(perm[i] * per + row, perm[i] * per + row + len), i * per + row);
    }
  }
  const lam = 1 - ((box.y2 - box.y1) * (box.x2 - box.x1)) / (h * w);
  return { images: out, labelsB: Int32Array.from(perm, (j) => labels[j]), lam };
}

export type MixOperator = (
  images: Float32Array,
  labels: Int32Array,
  shape: [number, number, number, number],
  rng: Rng,
) => MixedBatch;

/** The operator a TRAIN.mix list names (PaddleClas applies its single entry). */
export function mixOperatorFromConfig(mix: Record<string, { alpha?: number } | null>[] | undefined): MixOperator {
  if (!mix || mix.length === 0)
    throw new ConfigError(
      'config key TRAIN.mix: use_mix is True but TRAIN.mix lists no operator (MixupOperator or CutmixOperator)',
    );
  const [name, params] = Object.entries(mix[0])[0];
  const alpha = params?.alpha ?? 0.2;
  if (!(alpha > 0)) throw new ConfigError(`config key TRAIN.mix.0.${name}.alpha: must be > 0, got ${alpha}`);
  if (name === 'MixupOperator') return (x, y, s, rng) => mixup(x, y, s, alpha, rng);
  if (name === 'CutmixOperator') return (x, y, s, rng) => cutmix(x, y, s, alpha, rng);
  throw new ConfigError(`config key TRAIN.mix.0: unknown operator '${name}'; expected MixupOperator or CutmixOperator`);
}
