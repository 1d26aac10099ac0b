// Checks a PyTorch state_dict against the names and shapes a model expects, and converts PyTorch weight
// layouts to the TensorFlow.js ones (plain typed arrays, no tf dependency, so importers can run anywhere).
import { CheckpointError } from '../../shared/errors.js';
import type { StateDict, TorchTensor } from './pth.js';

/** BatchNorm's step counter: present in every torch state_dict, no weight in ours. */
const NO_WEIGHT_SUFFIX = 'num_batches_tracked';

/**
 * Throws one Error listing every missing, unexpected and mis-shaped entry (names, both shapes), or returns.
 * `*.num_batches_tracked` entries in `got` are accepted when `expected` does not list them.
 */
export function checkStateDict(expected: Map<string, number[]>, got: StateDict, file: string): void {
  const missing: string[] = [];
  const misShaped: string[] = [];
  for (const [name, shape] of expected) {
    const tensor = got.get(name);
    if (tensor === undefined) missing.push(name);
    else if (!sameShape(shape, tensor.shape)) {
      misShaped.push(`${name}: file ${formatShape(tensor.shape)}, model ${formatShape(shape)}`);
    }
  }
  const unexpected = [...got.keys()].filter((n) => !expected.has(n) && !n.endsWith(NO_WEIGHT_SUFFIX));
  if (missing.length + unexpected.length + misShaped.length === 0) return;
  const sections = [
    section('missing from the file', missing),
    section('unexpected in the file', unexpected),
    section('mis-shaped', misShaped),
  ].filter((s) => s !== '');
  const hint = unexpected.some((n) => n.startsWith('module.'))
    ? '\n(names start with "module.": saved from DataParallel?)'
    : '';
  throw new CheckpointError(
    `${file}: state_dict does not match the model: ${missing.length} missing, ${unexpected.length} unexpected, ` +
      `${misShaped.length} mis-shaped\n${sections.join('\n')}${hint}`,
  );
}

function section(title: string, lines: string[]): string {
  return lines.length === 0 ? '' : `${title} (${lines.length}):\n${lines.map((l) => `  ${l}`).join('\n')}`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** A float tensor in a plain array, C order. */
export interface FloatTensor {
  shape: number[];
  data: Float32Array;
}

type TensorLike = { shape: readonly number[]; data: TorchTensor['data'] };

function floatData(t: TensorLike, rank: number, name: string, layout: string): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new CheckpointError(`${name}: expected float data for ${layout}`);
  if (t.shape.length !== rank)
    throw new CheckpointError(`${name}: expected a ${layout} tensor, got shape ${formatShape(t.shape)}`);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== numel)
    throw new CheckpointError(`${name}: ${t.data.length} values for shape ${formatShape(t.shape)}`);
  return t.data;
}

/** Conv weight OIHW [out,in,kh,kw] -> HWIO [kh,kw,in,out] (transpose 2,3,1,0). */
export function torchConvToHWIO(t: TensorLike, name = 'conv weight'): FloatTensor {
  const src = floatData(t, 4, name, 'OIHW [out,in,kh,kw]');
  const [o, i, h, w] = t.shape;
  const dst = new Float32Array(src.length);
  // Read in source order; the write stride is `o` (the output channel is innermost in HWIO).
  let p = 0;
  for (let oo = 0; oo < o; oo++) {
    for (let ii = 0; ii < i; ii++) {
      for (let hh = 0; hh < h; hh++) {
        for (let ww = 0; ww < w; ww++) dst[((hh * w + ww) * i + ii) * o + oo] = src[p++];
      }
    }
  }
  return { shape: [h, w, i, o], data: dst };
}

/** Depthwise conv weight [C,1,kh,kw] -> [kh,kw,C,1] (transpose 2,3,0,1). */
export function torchDepthwiseToHWC1(t: TensorLike, name = 'depthwise weight'): FloatTensor {
  const src = floatData(t, 4, name, 'depthwise [C,1,kh,kw]');
  const [c, one, h, w] = t.shape;
  if (one !== 1)
    throw new CheckpointError(`${name}: depthwise weight must be [C,1,kh,kw], got ${formatShape(t.shape)}`);
  const dst = new Float32Array(src.length);
  let p = 0;
  for (let cc = 0; cc < c; cc++) {
    for (let k = 0; k < h * w; k++) dst[k * c + cc] = src[p++];
  }
  return { shape: [h, w, c, 1], data: dst };
}

/** Linear weight [out,in] -> [in,out]. */
export function torchLinearToInOut(t: TensorLike, name = 'linear weight'): FloatTensor {
  const src = floatData(t, 2, name, 'linear [out,in]');
  const [o, i] = t.shape;
  const dst = new Float32Array(src.length);
  let p = 0;
  for (let oo = 0; oo < o; oo++) {
    for (let ii = 0; ii < i; ii++) dst[ii * o + oo] = src[p++];
  }
  return { shape: [i, o], data: dst };
}
