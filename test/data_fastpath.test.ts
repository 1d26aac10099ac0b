/**
 * The fused train path (worker/data/resample.ts): sharp decodes and crops, one WebAssembly pass resizes, flips and
 * normalises. Its pixels against OpenCV's INTER_LINEAR (the PaddleClas reference) when enlarging, against sharp's
 * own linear resize when shrinking, and against the plain sharp path through the whole transform on a real photo;
 * flip and normalisation exact; high-frequency images included (noise, a 1-pixel checkerboard), where any
 * geometric offset shows.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { resampleNormalize } from '../worker/data/resample.js';
import { buildTransforms, type PaddleTransformOp } from '../worker/data/transforms.js';
import { DataLoader } from '../worker/data/loader.js';
import { mixSeed } from '../shared/rng.js';
import { cvBilinear } from './helpers/cv_bilinear.js';

const PHOTO = path.resolve('test/fixtures/images/photo_500x375.jpg');
const IDENTITY_LUT = new Float32Array(768).map((_, i) => i & 255);
const IDENTITY = { NormalizeImage: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1], order: '' } };
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const NORMALIZE = { NormalizeImage: { scale: '1./255.', mean: MEAN, std: STD, order: '' } };
let tmp = '';
let noise = ''; // 500x375 PNG of uniform random bytes
let checker = ''; // 500x375 PNG, 1-pixel black/white checkerboard

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'data-fastpath-'));
  const W = 500,
    H = 375;
  const a = Buffer.alloc(W * H * 3);
  let s = 12345;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = s >>> 24;
  }
  const b = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) b.fill((x + y) & 1 ? 255 : 0, (y * W + x) * 3, (y * W + x) * 3 + 3);
  noise = path.join(tmp, 'noise.png');
  checker = path.join(tmp, 'checker.png');
  await sharp(a, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toFile(noise);
  await sharp(b, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toFile(checker);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

async function crop(file: string, b: Box): Promise<Uint8Array> {
  return new Uint8Array(await sharp(file).extract(b).raw().toBuffer());
}

function fused(src: Uint8Array, b: Box, ow: number, oh: number, flip?: number, lut = IDENTITY_LUT): Float32Array {
  const out = new Float32Array(ow * oh * 3);
  resampleNormalize(src, b.width, b.height, ow, oh, flip, lut, out);
  return out;
}

function diff(a: ArrayLike<number>, b: ArrayLike<number>): { mae: number; max: number } {
  assert.equal(a.length, b.length);
  let s = 0,
    max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    s += d;
    if (d > max) max = d;
  }
  return { mae: s / a.length, max };
}

test('enlarging: OpenCV bilinear up to rounding, on a photo and on high-frequency images', async () => {
  for (const file of [PHOTO, noise, checker]) {
    for (const b of [
      { left: 10, top: 10, width: 150, height: 170 },
      { left: 5, top: 5, width: 112, height: 112 },
      { left: 300, top: 200, width: 200, height: 175 },
      { left: 0, top: 0, width: 1, height: 1 },
    ]) {
      const src = await crop(file, b);
      const { mae, max } = diff(fused(src, b, 224, 224), cvBilinear(src, b.width, b.height, 224, 224));
      // the result is rounded to uint8 (as cv2.resize's is): at most half a grey level on average (0.25 on a
      // photo, 0.375 on the checkerboard, whose values fall on quarters), never a whole one
      assert.ok(
        mae <= 0.5 && max <= 1,
        `${path.basename(file)} ${b.width}x${b.height} -> 224: MAE ${mae.toFixed(3)}, max ${max}`,
      );
    }
  }
  // the check tells geometries apart: sharp's own enlarging (libvips' affine) is half an output pixel off
  // half-pixel centres, which on the noise image is tens of grey levels
  const b = { left: 10, top: 10, width: 150, height: 170 };
  const src = await crop(noise, b);
  const viaSharp = await sharp(src, { raw: { width: b.width, height: b.height, channels: 3 } })
    .resize(224, 224, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer();
  assert.ok(diff(viaSharp, cvBilinear(src, b.width, b.height, 224, 224)).mae > 10);
});

test("shrinking: sharp's linear (anti-aliased) resize within a fraction of a grey level, high-frequency images included", async () => {
  for (const file of [PHOTO, noise, checker]) {
    for (const b of [
      { left: 10, top: 10, width: 360, height: 330 },
      { left: 0, top: 0, width: 500, height: 375 },
      { left: 10, top: 10, width: 448, height: 300 },
      { left: 3, top: 3, width: 230, height: 230 },
    ]) {
      const src = await crop(file, b);
      const ref = await sharp(src, { raw: { width: b.width, height: b.height, channels: 3 } })
        .resize(224, 224, { fit: 'fill', kernel: 'linear' })
        .raw()
        .toBuffer();
      const { mae, max } = diff(fused(src, b, 224, 224), ref);
      // libvips rounds its vertical pass to uint8, this keeps 6 more bits: the results differ by rounding only
      assert.ok(
        mae < 0.8 && max <= 3,
        `${path.basename(file)} ${b.width}x${b.height} -> 224: MAE ${mae.toFixed(3)}, max ${max}`,
      );
    }
  }
  // resize_short 256 on the photo: the existing tolerance against cv2 (which does not anti-alias) holds here too
  const all = { left: 0, top: 0, width: 500, height: 375 };
  const src = await crop(PHOTO, all);
  const { mae } = diff(fused(src, all, 341, 256), cvBilinear(src, 500, 375, 341, 256));
  assert.ok(mae < 1.5, `photo 500x375 -> 341x256 against cv2: MAE ${mae.toFixed(3)}`);
});

test("flips are exact mirrors (cv2 codes 1, 0, -1) and the normalisation is exactly NormalizeImage's lookup of the rounded value", async () => {
  const b = { left: 37, top: 21, width: 301, height: 187 };
  const src = await crop(PHOTO, b);
  const plain = fused(src, b, 224, 200);
  const mirrored = [1, 0, -1].map((code) => fused(src, b, 224, 200, code));
  for (let y = 0; y < 200; y++) {
    for (let x = 0; x < 224; x++) {
      for (let c = 0; c < 3; c++) {
        const at = (y * 224 + x) * 3 + c;
        assert.equal(mirrored[0][at], plain[(y * 224 + 223 - x) * 3 + c]);
        assert.equal(mirrored[1][at], plain[((199 - y) * 224 + x) * 3 + c]);
        assert.equal(mirrored[2][at], plain[((199 - y) * 224 + 223 - x) * 3 + c]);
      }
    }
  }
  const lut = new Float32Array(768).map((_, i) => ((i & 255) * (1 / 255) - MEAN[i >> 8]) / STD[i >> 8]);
  const normalized = fused(src, b, 224, 200, undefined, lut);
  for (let i = 0; i < plain.length; i++) {
    assert.ok(Number.isInteger(plain[i]) && plain[i] >= 0 && plain[i] <= 255);
    assert.equal(normalized[i], Math.fround((plain[i] * (1 / 255) - MEAN[i % 3]) / STD[i % 3]));
  }
  // sizes that do not fit are refused, naming them
  assert.throws(
    () => resampleNormalize(src, b.width, b.height + 1, 224, 200, undefined, lut, new Float32Array(224 * 200 * 3)),
    /301x188x3/,
  );
  assert.throws(
    () => resampleNormalize(src, b.width, b.height, 224, 200, undefined, lut, new Float32Array(10)),
    /224x200x3/,
  );
});

test('large shrink factors (a big photo cropped to a small output) and odd sizes stay close to sharp', async () => {
  const big = path.join(tmp, 'big.jpg');
  await sharp(PHOTO).resize(2000, 1500, { kernel: 'linear' }).jpeg({ quality: 90 }).toFile(big);
  for (const [b, ow, oh] of [
    [{ left: 0, top: 0, width: 2000, height: 1500 }, 224, 224],
    [{ left: 101, top: 7, width: 1777, height: 1333 }, 97, 33],
    [{ left: 0, top: 0, width: 640, height: 480 }, 7, 5],
  ] as Array<[Box, number, number]>) {
    const src = await crop(big, b);
    const ref = await sharp(src, { raw: { width: b.width, height: b.height, channels: 3 } })
      .resize(ow, oh, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer();
    const { mae } = diff(fused(src, b, ow, oh), ref);
    // above a factor of 4 libvips box-shrinks first and then applies the triangle; this is one wide triangle
    assert.ok(mae < 1.5, `${b.width}x${b.height} -> ${ow}x${oh}: MAE ${mae.toFixed(3)} against sharp`);
  }
});

const TRAIN: PaddleTransformOp[] = [
  { DecodeImage: {} },
  { RandCropImage: { size: 224 } },
  { RandFlipImage: { flip_code: 1 } },
  NORMALIZE,
  { ToCHWImage: null },
];

test('the train transforms: fused and plain paths draw the same boxes and flips and agree within the resize tolerance on a photo', async () => {
  const identity: PaddleTransformOp[] = [
    { DecodeImage: {} },
    { RandCropImage: { size: 224 } },
    { RandFlipImage: { flip_code: 1 } },
    IDENTITY,
  ];
  const fast = buildTransforms(identity, { seed: 4 });
  const slow = buildTransforms(identity, { seed: 4, fusedResample: false });
  let worst = 0;
  for (let call = 0; call < 24; call++) {
    const a = await fast({ path: PHOTO }, call);
    const b = await slow({ path: PHOTO }, call);
    assert.deepEqual(a.shape, [224, 224, 3]);
    // a wrong box or a missed flip is tens of grey levels on this photo; the resize tolerance of the
    // transform tests is a mean of 1.5
    const { mae } = diff(a.data, b.data);
    worst = Math.max(worst, mae);
    assert.ok(mae < 1.5, `call ${call}: MAE ${mae.toFixed(3)} between the fused and the sharp path`);
    assert.deepEqual((await fast({ path: PHOTO }, call)).data, a.data, 'reproducible');
  }
  assert.ok(worst > 0, 'the fused path ran (it differs from the sharp path by rounding)');
  // with the real normalisation, written straight into the caller's slice (the loader's batch buffer)
  const fn = buildTransforms(TRAIN, { seed: 4, channelsLast: true });
  const dest = new Float32Array(224 * 224 * 3);
  const out = await fn({ path: PHOTO }, 3, dest);
  assert.equal(out.data, dest);
  assert.deepEqual(out.shape, [224, 224, 3]);
  const viaIdentity = await fast({ path: PHOTO }, 3);
  for (let i = 0; i < dest.length; i += 997)
    assert.equal(dest[i], Math.fround((viaIdentity.data[i] / 255 - MEAN[i % 3]) / STD[i % 3]));
});

test('lists the fused path does not cover keep the sharp path: CHW normalisation, ops after the crop', async () => {
  for (const ops of [
    [
      { DecodeImage: {} },
      { RandCropImage: { size: 64 } },
      { NormalizeImage: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1], order: 'chw' } },
    ],
    [{ DecodeImage: {} }, { RandCropImage: { size: 64 } }, { AutoAugment: null }, IDENTITY],
  ] as PaddleTransformOp[][]) {
    const a = buildTransforms(ops, { seed: 2 });
    const b = buildTransforms(ops, { seed: 2, fusedResample: false });
    for (let call = 0; call < 4; call++)
      assert.deepEqual(
        (await a({ path: PHOTO }, call)).data,
        (await b({ path: PHOTO }, call)).data,
        JSON.stringify(ops[2]),
      );
  }
  // vertical and double flips are fused too: same boxes and flips as the sharp path, within the tolerance
  for (const code of [0, -1]) {
    const ops: PaddleTransformOp[] = [
      { DecodeImage: {} },
      { RandCropImage: { size: 224 } },
      { RandFlipImage: { flip_code: code } },
      IDENTITY,
    ];
    const a = buildTransforms(ops, { seed: 2 });
    const b = buildTransforms(ops, { seed: 2, fusedResample: false });
    for (let call = 0; call < 6; call++) {
      const { mae } = diff((await a({ path: PHOTO }, call)).data, (await b({ path: PHOTO }, call)).data);
      assert.ok(mae < 1.5, `flip_code ${code}, call ${call}: MAE ${mae.toFixed(3)}`);
    }
  }
});

test('the loader on the fused path: batches hold exactly what the transform gives per sample', async () => {
  const samples = Array.from({ length: 6 }, (_, i) => ({ path: PHOTO, label: i, line: i + 1 }));
  const loader = new DataLoader({ samples, transforms: TRAIN, batchSize: 3, shuffle: false, seed: 9 });
  const fn = buildTransforms(TRAIN, { seed: 9, channelsLast: true });
  let position = 0;
  for await (const batch of loader) {
    assert.deepEqual(batch.shape, [3, 224, 224, 3]);
    for (let k = 0; k < 3; k++, position++) {
      // the loader's call seed for epoch 0, attempt 0 (see DataLoader.loadOne)
      const want = await fn({ path: PHOTO, index: batch.indices[k] }, mixSeed(0, position, 0));
      assert.deepEqual(
        batch.images.subarray(k * 224 * 224 * 3, (k + 1) * 224 * 224 * 3),
        want.data,
        `sample ${position}`,
      );
    }
    batch.release();
  }
});
