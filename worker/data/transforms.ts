/**
 * PaddleClas transform lists, executed with sharp (libvips) for decoding and resampling.
 *
 * A config's list (`- DecodeImage: {...}`, `- RandCropImage: {size: 224}`, ...) becomes one async function
 * `(sample, callSeed?) => {data, shape, layout}`. Randomness comes from a Mulberry32 seeded by
 * (opts.seed, callSeed, sample path), so the same seed and sample always give the same pixels.
 *
 * Speed: DecodeImage does not decode at once; it reads the header (size, EXIF orientation) and leaves the
 * image "pending". The geometric ops that follow (RandCropImage, ResizeImage, CropImage) are folded into that
 * one sharp pipeline (extract -> resize -> extract), so a sample costs one decode+crop+resize on libuv's thread
 * pool instead of several buffer round trips. Any other op first materializes RGB uint8. The train list
 * (RandCropImage, RandFlipImage, NormalizeImage) goes further: RandFlipImage only records the flip, sharp decodes
 * and crops, and NormalizeImage resizes, flips and normalises in one WebAssembly pass straight into the batch
 * (resample.ts): libvips' resize of a random crop to 224 cost more CPU than decoding it (docs/bench_data.md).
 *
 * Interpolation: OpenCV's INTER_LINEAR there, libvips' linear kernel here; on downscaling libvips also
 * anti-aliases, so pixel values agree within interpolation tolerance, while crop boxes and sizes are exact.
 * Enlarging, the fused train path is INTER_LINEAR itself (to rounding); libvips' affine, which the other lists
 * use when they enlarge, samples half an output pixel off half-pixel centres (libvips 8.18, see data_fastpath.test).
 */
import { headerImageSize, jpegDisplaySize, jpegHeader } from './header.js';
import { decodeJpegBox } from './jpeg_turbo.js';
import * as fs from 'node:fs/promises';
import sharp from 'sharp';
import { Mulberry32, mixSeed, type Rng } from '../../shared/rng.js';
import { DEFAULT_MAX_IMAGE_PIXELS } from '../../shared/config.js';
import { ConfigError, DataError } from '../../shared/errors.js';
import { autoAugmentImageNet } from './autoaugment.js';
import type { ImageCache } from './decode_cache.js';
import { chwToHwc, flipRaw, hwcToChw, rawToFloat, type FloatImage, type RawImage } from './image.js';
import { resampleNormalize } from './resample.js';

/** One entry of a config's transforms list: `{OpName: params|null}`. */
export type PaddleTransformOp = Record<string, Record<string, unknown> | null | undefined>;

export interface TransformInput {
  path: string;
  /** already-read file contents; read from path when absent */
  buffer?: Buffer;
  /** the sample's position in its file list (the slot of a shared decode cache) */
  index?: number;
}

export interface TransformOutput {
  data: Float32Array;
  /** [h, w, c] for HWC, [c, h, w] for CHW */
  shape: [number, number, number];
  layout: 'HWC' | 'CHW';
}

export interface BuildOptions {
  seed?: number;
  /**
   * RandCropImage followed by [RandFlipImage,] NormalizeImage (HWC): sharp only decodes and crops, and the resize,
   * flip and normalisation run as one WebAssembly SIMD pass into the output (resample.ts). Default true; false
   * resizes with sharp (libvips) as every other list does. Shrinking, the two agree to rounding; enlarging, this
   * one is OpenCV's INTER_LINEAR (half-pixel centres) while libvips' affine samples half an output pixel off.
   */
  fusedResample?: boolean;
  /**
   * The model consumes NHWC: with channelsLast, ToCHWImage is a no-op and the output stays HWC (saves a
   * transpose there and back). Default false: the output is exactly what the list says.
   */
  channelsLast?: boolean;
  /**
   * Keep the decoded images after the list's deterministic head (DecodeImage + ResizeImage/CropImage) for later
   * calls on the same file; see decode_cache.ts. Used only when that head resizes or crops.
   */
  cache?: ImageCache;
  /** images with more pixels are refused before decoding (config max_image_pixels; default 50 megapixels) */
  maxImagePixels?: number;
  /**
   * Decode JPEGs and their crop boxes with libjpeg-turbo (jpeg_turbo.ts) where it gives sharp's pixels and the
   * library is installed. Default true; false sends every image to sharp (the bench's comparison).
   */
  jpegTurbo?: boolean;
}

/**
 * dest: optional buffer of exactly h*w*c floats (e.g. a slice of a batch) that the result is written into
 * when the list allows it; check `out.data === dest`.
 */
export type TransformFn = (sample: TransformInput, callSeed?: number, dest?: Float32Array) => Promise<TransformOutput>;

export interface Region {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** A decoded-on-demand image: source bytes plus the geometric ops sharp will apply in one pass. */
interface PendingImage {
  kind: 'pending';
  input: Buffer;
  path: string;
  /** sharp's limitInputPixels for the decode */
  maxPixels: number;
  /** a JPEG that libjpeg-turbo decodes as sharp would (no EXIF rotation, no ICC profile): its stored size */
  turbo?: { width: number; height: number };
  /** size after the ops below */
  width: number;
  height: number;
  pre?: Region;
  /** fusable: made by RandCropImage, so NormalizeImage may resample it itself (never part of a cached head) */
  resize?: { width: number; height: number; fromWidth: number; fromHeight: number; fusable: boolean };
  post?: Region;
  /** cv2.flip code applied last (RandFlipImage), or none */
  flip?: number;
}

type Img = PendingImage | RawImage | FloatImage;

/**
 * A sample the transforms cannot use (unreadable, undecodable, too large, too small for a crop): a data error
 * naming its file where there is one; the loader logs and replaces it like any bad sample. A transforms list
 * that cannot work at all is a ConfigError instead, thrown when it is built.
 */
export class TransformError extends DataError {}

/**
 * sharp's own default (268 megapixels) lets one small, highly compressed PNG take gigabytes and seconds to
 * decode; the header's size is checked against this limit first, and sharp enforces it too (limitInputPixels).
 */
function checkPixels(file: string, width: number, height: number, limit: number): void {
  if (width * height > limit) {
    throw new TransformError(
      `${file}: ${width}x${height} is ${width * height} pixels, more than max_image_pixels (${limit}); ` +
        'raise that config key to accept such images',
      file,
    );
  }
}

async function decodePending(
  input: Buffer,
  file: string,
  maxPixels: number,
  jpegTurbo: boolean,
): Promise<PendingImage> {
  // one walk over a JPEG's markers gives both its shown size and whether libjpeg-turbo may decode it
  const jpeg = jpegHeader(input);
  const fromHeader = jpeg ? jpegDisplaySize(jpeg) : headerImageSize(input);
  if (fromHeader) {
    checkPixels(file, fromHeader.width, fromHeader.height, maxPixels);
    const turbo =
      jpegTurbo && jpeg && jpeg.orientation === 1 && !jpeg.iccProfile
        ? { width: jpeg.width, height: jpeg.height }
        : undefined;
    return { kind: 'pending', input, path: file, maxPixels, turbo, ...fromHeader };
  }
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(input, { limitInputPixels: maxPixels }).metadata();
  } catch (e) {
    throw new TransformError(`cannot decode ${file}: ${(e as Error).message}`, file);
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw new TransformError(`cannot decode ${file}: no image size in its header`, file);
  checkPixels(file, width, height, maxPixels);
  return { kind: 'pending', input, path: file, width, height, maxPixels };
}

async function materialize(img: PendingImage): Promise<RawImage> {
  const raw = await decodePixels(img);
  return img.flip === undefined ? raw : flipRaw(raw, img.flip);
}

/** Decode and crop (where asked) with libjpeg-turbo where that gives sharp's pixels, with sharp otherwise. */
async function decodePixels(img: PendingImage): Promise<RawImage> {
  if (img.turbo && !img.resize && !img.post) {
    const box = img.pre ?? { left: 0, top: 0, width: img.width, height: img.height };
    const raw = await decodeJpegBox(img.input, img.turbo.width, img.turbo.height, box, img.maxPixels);
    if (raw) return raw;
  }
  return decodeWithSharp(img);
}

/** The one sharp pipeline per image: decode, crop, resize, crop (each where asked), RGB uint8 out. */
async function decodeWithSharp(img: PendingImage): Promise<RawImage> {
  // failOn 'truncated' rejects truncated/corrupt files (the loader then substitutes a sample) while still
  // accepting files with harmless warnings such as extraneous bytes after the JPEG end marker
  let s = sharp(img.input, { autoOrient: true, failOn: 'truncated', limitInputPixels: img.maxPixels });
  if (img.pre) s = s.extract(img.pre);
  if (img.resize) s = s.resize(img.resize.width, img.resize.height, { fit: 'fill', kernel: 'linear' });
  if (img.post) s = s.extract(img.post);
  try {
    const { data, info } = await s.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== img.width || info.height !== img.height) {
      throw new TransformError(
        `decoded to ${info.width}x${info.height}x${info.channels}, expected ${img.width}x${img.height}x3`,
        img.path,
      );
    }
    return {
      kind: 'raw',
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
    };
  } catch (e) {
    throw new TransformError(`cannot decode ${img.path}: ${(e as Error).message}`, img.path);
  }
}

async function toRaw(img: Img, op: string): Promise<RawImage> {
  if (img.kind === 'pending') return materialize(img);
  if (img.kind === 'raw') return img;
  throw new TransformError(`${op} needs a uint8 image; put it before NormalizeImage/ToCHWImage`);
}

/** Crop a region: folded into the pending sharp pipeline when it can be, otherwise done on raw pixels. */
async function extract(img: Img, r: Region, op: string): Promise<Img> {
  if (
    r.width < 1 ||
    r.height < 1 ||
    r.left < 0 ||
    r.top < 0 ||
    r.left + r.width > img.width ||
    r.top + r.height > img.height
  ) {
    throw new TransformError(
      `${op}: crop ${r.width}x${r.height}+${r.left}+${r.top} does not fit the ${img.width}x${img.height} image`,
    );
  }
  if (img.kind === 'pending' && img.flip === undefined) {
    if (!img.pre && !img.resize) return { ...img, pre: r, width: r.width, height: r.height };
    if (img.resize && !img.post) return { ...img, post: r, width: r.width, height: r.height };
  }
  const raw = await toRaw(img, op);
  const out = new Uint8Array(r.width * r.height * 3);
  for (let y = 0; y < r.height; y++) {
    const s = ((r.top + y) * raw.width + r.left) * 3;
    out.set(raw.data.subarray(s, s + r.width * 3), y * r.width * 3);
  }
  return { kind: 'raw', data: out, width: r.width, height: r.height };
}

async function resize(img: Img, width: number, height: number, op: string, fusable = false): Promise<Img> {
  if (img.kind === 'pending' && !img.resize && !img.post && img.flip === undefined) {
    return { ...img, resize: { width, height, fromWidth: img.width, fromHeight: img.height, fusable }, width, height };
  }
  const raw = await toRaw(img, op);
  const data = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  return { kind: 'raw', data: new Uint8Array(data.buffer, data.byteOffset, data.length), width, height };
}

/** Python 3's round(): half to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** NormalizeImage.scale: a number or a string like "1./255." that PaddleClas eval()s; only a/b and a*b are allowed. */
export function parseScale(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string')
    throw new ConfigError(`NormalizeImage.scale must be a number or "a/b", got ${JSON.stringify(v)}`);
  const num = String.raw`\s*([0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]+)?)\s*`;
  const m = new RegExp(`^${num}(?:([/*])${num})?$`).exec(v);
  const a = m ? Number(m[1]) : NaN;
  const b = m && m[3] !== undefined ? Number(m[3]) : 1;
  if (
    !m ||
    m[1] === '' ||
    m[1] === '.' ||
    Number.isNaN(a) ||
    Number.isNaN(b) ||
    (m[2] && (m[3] === '' || m[3] === '.'))
  ) {
    throw new ConfigError(`NormalizeImage.scale ${JSON.stringify(v)} is not a number or "a/b"`);
  }
  return m[2] === '*' ? a * b : a / b;
}

function sizePair(v: unknown, op: string, key = 'size'): [number, number] {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0;
  if (ok(v)) return [v, v];
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]];
  throw new ConfigError(`${op}.${key} must be a positive integer or [w, h], got ${JSON.stringify(v)}`);
}

function numberList(v: unknown, n: number, op: string, key: string): number[] {
  if (!Array.isArray(v) || v.length !== n || v.some((x) => typeof x !== 'number')) {
    throw new ConfigError(`${op}.${key} must be a list of ${n} numbers, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

/**
 * RandCropImage's box, one attempt, as PaddleClas computes it: ar = sqrt(U(ratio)), w = ar, h = 1/ar,
 * bound = min((W/H)/w^2, (H/W)/h^2), s = U(min(scale0, bound), min(scale1, bound)), T = sqrt(W*H*s),
 * cw = int(T*w), ch = int(T*h), left = randint(0, W-cw), top = randint(0, H-ch).
 * The rng draws happen in that order: uniform, uniform, randint, randint.
 */
export function randCropBox(W: number, H: number, scale: number[], ratio: number[], rng: Rng): Region {
  const ar = Math.sqrt(rng.uniform(ratio[0], ratio[1]));
  const w0 = ar;
  const h0 = 1 / ar;
  const bound = Math.min(W / H / (w0 * w0), H / W / (h0 * h0));
  const sMax = Math.min(scale[1], bound);
  const sMin = Math.min(scale[0], bound);
  const target = Math.sqrt(W * H * rng.uniform(sMin, sMax));
  // int() truncates; the clamps only matter for float rounding at bound (PaddleClas would crash there)
  const width = Math.max(1, Math.min(W, Math.trunc(target * w0)));
  const height = Math.max(1, Math.min(H, Math.trunc(target * h0)));
  const left = rng.randint(0, W - width);
  const top = rng.randint(0, H - height);
  return { left, top, width, height };
}

interface StepContext {
  rng: Rng;
  /** where the final NormalizeImage may write (a slice of the loader's batch buffer) */
  dest?: Float32Array;
}

type Step = (img: Img, ctx: StepContext) => Promise<Img> | Img;

/** NormalizeImage via per-channel 256-entry LUTs of float32((v * scale - mean) / std): exact and fast. */
function normalizeStep(p: Record<string, unknown>, writesOutput: boolean, fused: boolean): Step {
  const scale = parseScale(p.scale ?? 1 / 255);
  const mean = numberList(p.mean ?? [0.485, 0.456, 0.406], 3, 'NormalizeImage', 'mean');
  const std = numberList(p.std ?? [0.229, 0.224, 0.225], 3, 'NormalizeImage', 'std');
  std.forEach((s, i) => {
    if (s === 0) throw new ConfigError(`NormalizeImage.std[${i}] is 0`);
  });
  const lutsFlat = Float32Array.from({ length: 768 }, (_, i) => ((i & 255) * scale - mean[i >> 8]) / std[i >> 8]);
  const luts = [0, 1, 2].map((c) => lutsFlat.subarray(c * 256, c * 256 + 256));
  const chw = p.order === 'chw';
  return async (img, ctx) => {
    const n = img.width * img.height;
    // writing straight into the batch buffer saves a 600 KB allocation per 224x224 image, whose first-touch
    // page faults cost more than the normalization itself
    const out = writesOutput && !chw && ctx.dest && ctx.dest.length === n * 3 ? ctx.dest : new Float32Array(n * 3);
    if (fused && !chw && img.kind === 'pending' && img.resize?.fusable && !img.post) {
      // sharp decodes and crops; resize + flip + this normalisation are one pass into `out`
      const { width, height, fromWidth, fromHeight } = img.resize;
      const crop = await decodePixels({
        ...img,
        resize: undefined,
        flip: undefined,
        width: fromWidth,
        height: fromHeight,
      });
      resampleNormalize(crop.data, crop.width, crop.height, width, height, img.flip, lutsFlat, out);
      return { kind: 'float', data: out, width, height, channels: 3, layout: 'HWC' };
    }
    const raw = await toRaw(img, 'NormalizeImage');
    const d = raw.data;
    const [l0, l1, l2] = luts;
    if (chw) {
      for (let i = 0; i < n; i++) {
        out[i] = l0[d[i * 3]];
        out[n + i] = l1[d[i * 3 + 1]];
        out[2 * n + i] = l2[d[i * 3 + 2]];
      }
    } else {
      for (let i = 0; i < n * 3; i += 3) {
        out[i] = l0[d[i]];
        out[i + 1] = l1[d[i + 1]];
        out[i + 2] = l2[d[i + 2]];
      }
    }
    return { kind: 'float', data: out, width: raw.width, height: raw.height, channels: 3, layout: chw ? 'CHW' : 'HWC' };
  };
}

/** PaddleClas RandomErasing (on the normalized float image, CHW or HWC): up to 100 tries to fit a box. */
function randomErasingStep(p: Record<string, unknown>): Step {
  const epsilon = Number(p.EPSILON ?? p.epsilon ?? 0.5);
  const sl = Number(p.sl ?? 0.02);
  const sh = Number(p.sh ?? 0.4);
  const r1 = Number(p.r1 ?? 0.3);
  const mean = numberList(p.mean ?? [0, 0, 0], 3, 'RandomErasing', 'mean');
  return (img, { rng }) => {
    if (img.kind !== 'float') throw new TransformError('RandomErasing must come after NormalizeImage');
    if (rng.uniform(0, 1) > epsilon) return img;
    const { width: W, height: H } = img;
    for (let attempt = 0; attempt < 100; attempt++) {
      const target = rng.uniform(sl, sh) * W * H;
      const ar = rng.uniform(r1, 1 / r1);
      const h = roundHalfEven(Math.sqrt(target * ar));
      const w = roundHalfEven(Math.sqrt(target / ar));
      if (w < W && h < H) {
        const y1 = rng.randint(0, H - h);
        const x1 = rng.randint(0, W - w);
        const data = img.data; // in place: the image was created by this pipeline
        for (let y = y1; y < y1 + h; y++) {
          for (let x = x1; x < x1 + w; x++) {
            for (let c = 0; c < 3; c++) {
              const i = img.layout === 'CHW' ? c * W * H + y * W + x : (y * W + x) * 3 + c;
              data[i] = mean[c];
            }
          }
        }
        return img;
      }
    }
    return img;
  };
}

function buildStep(name: string, params: Record<string, unknown>, opts: BuildOptions, writesOutput: boolean): Step {
  switch (name) {
    case 'DecodeImage':
      // DecodeImage itself happens when the sample is read (see buildTransforms); to_rgb / channel_first=False
      // are the only combination PaddleClas configs use, and what sharp gives.
      if (params.channel_first === true)
        throw new ConfigError('DecodeImage.channel_first=True is not supported; use ToCHWImage');
      return (img) => img;
    case 'RandCropImage': {
      const [sw, sh] = sizePair(params.size, name);
      const scale = numberList(params.scale ?? [0.08, 1.0], 2, name, 'scale');
      const ratio = numberList(params.ratio ?? [3 / 4, 4 / 3], 2, name, 'ratio');
      return async (img, { rng }) => {
        const box = randCropBox(img.width, img.height, scale, ratio, rng);
        const cropped = await extract(img, box, name);
        return resize(cropped, sw, sh, name, true);
      };
    }
    case 'RandFlipImage': {
      const code = Number(params.flip_code ?? 1);
      if (![1, 0, -1].includes(code))
        throw new ConfigError(`RandFlipImage.flip_code must be 1, 0 or -1, got ${params.flip_code}`);
      return async (img, { rng }) => {
        if (rng.randint(0, 1) !== 1) return img;
        // on a pending image the flip is recorded and done by whoever produces the pixels
        if (img.kind === 'pending' && img.flip === undefined) return { ...img, flip: code };
        return flipRaw(await toRaw(img, name), code);
      };
    }
    case 'ResizeImage': {
      if (params.resize_short !== undefined && params.resize_short !== null) {
        const short = Number(params.resize_short);
        if (!Number.isInteger(short) || short < 1)
          throw new ConfigError(`ResizeImage.resize_short must be a positive integer, got ${params.resize_short}`);
        return (img) => {
          const p = short / Math.min(img.width, img.height);
          return resize(img, roundHalfEven(img.width * p), roundHalfEven(img.height * p), name);
        };
      }
      const [w, h] = sizePair(params.size, name, 'size (or resize_short)');
      return (img) => resize(img, w, h, name);
    }
    case 'CropImage': {
      const [w, h] = sizePair(params.size, name);
      return (img) =>
        extract(
          img,
          { left: Math.floor((img.width - w) / 2), top: Math.floor((img.height - h) / 2), width: w, height: h },
          name,
        );
    }
    case 'NormalizeImage':
      return normalizeStep(params, writesOutput, opts.fusedResample ?? true);
    case 'ToCHWImage':
      return async (img) => {
        const f = img.kind === 'float' ? img : rawToFloat(await toRaw(img, name));
        return opts.channelsLast ? chwToHwc(f) : hwcToChw(f);
      };
    case 'AutoAugment':
      return async (img, { rng }) => autoAugmentImageNet(await toRaw(img, name), rng);
    case 'RandomErasing':
      return randomErasingStep(params);
    default:
      throw new ConfigError(
        `unknown transform ${JSON.stringify(name)}; supported: DecodeImage, RandCropImage, RandFlipImage, ` +
          'ResizeImage, CropImage, NormalizeImage, ToCHWImage, AutoAugment, RandomErasing',
      );
  }
}

function hashString(s: string): number {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** The rng a transform function uses for one call (exported so tests can replay its draws). */
export function sampleRng(seed: number, callSeed: number, file: string): Rng {
  return new Mulberry32(mixSeed(seed, callSeed, hashString(file)));
}

/**
 * Throws ConfigError for a list or an op's settings that cannot work; its key is relative to the data section
 * (`transforms`, `transforms.<i>.<op>`): the caller knows which section and file the list came from.
 */
export function buildTransforms(ops: PaddleTransformOp[], opts: BuildOptions = {}): TransformFn {
  if (!Array.isArray(ops) || ops.length === 0)
    throw new ConfigError('transforms must be a non-empty list', undefined, 'transforms');
  const names = ops.map((entry, i) => {
    const keys = entry && typeof entry === 'object' ? Object.keys(entry) : [];
    if (keys.length !== 1)
      throw new ConfigError(
        `transforms[${i}] must be a map with one op name, got ${JSON.stringify(entry)}`,
        undefined,
        `transforms.${i}`,
      );
    return keys[0];
  });
  if (names[0] !== 'DecodeImage')
    throw new ConfigError(`transforms[0] must be DecodeImage, got ${names[0]}`, undefined, 'transforms.0');
  // NormalizeImage may write into the caller's buffer only if nothing after it changes the data
  // (ToCHWImage under channelsLast is a no-op)
  const lastNormalize = names.lastIndexOf('NormalizeImage');
  const normalizeIsFinal =
    lastNormalize >= 0 && names.slice(lastNormalize + 1).every((n) => n === 'ToCHWImage' && opts.channelsLast);
  const steps = ops.map((entry, i) => {
    try {
      return buildStep(
        names[i],
        (entry[names[i]] ?? {}) as Record<string, unknown>,
        opts,
        normalizeIsFinal && i === lastNormalize,
      );
    } catch (e) {
      throw new ConfigError(
        `transforms[${i}] (${names[i]}): ${(e as Error).message}`,
        undefined,
        `transforms.${i}.${names[i]}`,
      );
    }
  });
  const baseSeed = opts.seed ?? 0;
  // the deterministic head: DecodeImage and the ResizeImage / CropImage right after it draw no random numbers
  let head = 1;
  while (head < names.length && (names[head] === 'ResizeImage' || names[head] === 'CropImage')) head++;
  const cache = head > 1 ? opts.cache : undefined;
  return async (sample, callSeed = 0, dest) => {
    const ctx: StepContext = { rng: sampleRng(baseSeed, callSeed, sample.path), dest };
    const cached = cache && !sample.buffer ? cache.get(sample.path, sample.index) : undefined;
    let img: Img;
    if (cached) img = cached;
    else {
      img = await decodeHead(sample, ctx);
      if (cache && !sample.buffer) {
        img = await toRaw(img, names[head - 1]);
        cache.put(sample.path, img, sample.index);
      }
    }
    for (const step of steps.slice(head)) img = await step(img, ctx);
    const f = img.kind === 'float' ? img : rawToFloat(await toRaw(img, 'output'));
    const shape: [number, number, number] =
      f.layout === 'CHW' ? [f.channels, f.height, f.width] : [f.height, f.width, f.channels];
    return { data: f.data, shape, layout: f.layout };
  };

  async function decodeHead(sample: TransformInput, ctx: StepContext): Promise<Img> {
    let input = sample.buffer;
    if (!input) {
      try {
        input = await fs.readFile(sample.path);
      } catch (e) {
        throw new TransformError(
          `cannot read ${sample.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          sample.path,
        );
      }
    }
    let img: Img = await decodePending(
      input,
      sample.path,
      opts.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS,
      opts.jpegTurbo ?? true,
    );
    for (const step of steps.slice(0, head)) img = await step(img, ctx);
    return img;
  }
}

/** Stack HWC (or CHW, transposed) images of one size into one NHWC float32 batch. */
export function toNHWCBatch(images: TransformOutput[]): {
  data: Float32Array;
  shape: [number, number, number, number];
} {
  if (images.length === 0) throw new RangeError('toNHWCBatch: no images');
  const hwc = images.map((im) =>
    im.layout === 'HWC'
      ? im
      : {
          data: chwToHwc({
            kind: 'float',
            data: im.data,
            channels: im.shape[0],
            height: im.shape[1],
            width: im.shape[2],
            layout: 'CHW',
          }).data,
          shape: [im.shape[1], im.shape[2], im.shape[0]] as [number, number, number],
        },
  );
  const [h, w, c] = hwc[0].shape;
  const per = h * w * c;
  const out = new Float32Array(per * images.length);
  hwc.forEach((im, i) => {
    if (im.shape[0] !== h || im.shape[1] !== w || im.shape[2] !== c) {
      throw new RangeError(`toNHWCBatch: image ${i} is ${im.shape.join('x')}, expected ${h}x${w}x${c}`);
    }
    out.set(im.data, i * per);
  });
  return { data: out, shape: [images.length, h, w, c] };
}

export interface InferPreprocessOptions {
  resizeShort?: number;
  crop?: number;
  mean?: number[];
  std?: number[];
}

/** `launch infer` preprocessing: resize_short, centre crop, ImageNet normalization; HWC float32 RGB. */
export async function inferPreprocess(
  file: string,
  o: InferPreprocessOptions = {},
): Promise<{ data: Float32Array; shape: [number, number, number] }> {
  const fn = buildTransforms(
    [
      { DecodeImage: { to_rgb: true, channel_first: false } },
      { ResizeImage: { resize_short: o.resizeShort ?? 256 } },
      { CropImage: { size: o.crop ?? 224 } },
      {
        NormalizeImage: {
          scale: '1./255.',
          mean: o.mean ?? [0.485, 0.456, 0.406],
          std: o.std ?? [0.229, 0.224, 0.225],
          order: '',
        },
      },
    ],
    { channelsLast: true },
  );
  const out = await fn({ path: file });
  return { data: out.data, shape: out.shape };
}
