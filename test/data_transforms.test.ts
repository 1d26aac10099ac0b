import { test, before, after } from 'node:test';
import { cvBilinear as cvBilinearPixels } from './helpers/cv_bilinear.js';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import {
  buildTransforms,
  inferPreprocess,
  parseScale,
  randCropBox,
  roundHalfEven,
  sampleRng,
  toNHWCBatch,
  type TransformOutput,
} from '../worker/data/transforms.js';
import { applyOp, autocontrast, equalize } from '../worker/data/autoaugment.js';
import type { RawImage } from '../worker/data/image.js';
import { DecodeCache } from '../worker/data/decode_cache.js';
import { SharedDecodeCache } from '../worker/data/shared_decode_cache.js';
import { nativeShm } from '../worker/sys/shm.js';

const FIX = path.resolve('test/fixtures/images');
const fx = (f: string) => path.join(FIX, f);
const IDENTITY = { NormalizeImage: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1], order: '' } };
const decodeOnly = buildTransforms([{ DecodeImage: { to_rgb: true } }, IDENTITY]);
let tmp = '';
let coords = ''; // 250x250 PNG whose R = x, G = y: crop boxes can be read back from the pixels

function px(o: TransformOutput, x: number, y: number): number[] {
  const i = (y * o.shape[1] + x) * 3;
  return Array.from(o.data.slice(i, i + 3));
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'data-transforms-'));
  const buf = Buffer.alloc(250 * 250 * 3);
  for (let y = 0; y < 250; y++) for (let x = 0; x < 250; x++) buf.set([x, y, 0], (y * 250 + x) * 3);
  coords = path.join(tmp, 'coords.png');
  await sharp(buf, { raw: { width: 250, height: 250, channels: 3 } })
    .png()
    .toFile(coords);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('DecodeImage: grey expanded, alpha dropped, CMYK converted, EXIF orientation applied', async () => {
  const grey = await decodeOnly({ path: fx('grey.png') });
  assert.deepEqual(grey.shape, [48, 64, 3]);
  for (const [x, y] of [
    [0, 0],
    [10, 20],
    [63, 47],
  ]) {
    const [r, g, b] = px(grey, x, y);
    assert.ok(r === g && g === b, `grey pixel ${x},${y} = ${r},${g},${b}`);
  }
  assert.deepEqual(px(grey, 0, 0), [0, 0, 0]);
  assert.deepEqual(px(grey, 63, 47), [255, 255, 255]);

  const rgba = await decodeOnly({ path: fx('rgba.png') });
  assert.deepEqual(rgba.shape, [30, 40, 3]);
  assert.deepEqual(px(rgba, 0, 0), [10, 20, 30]); // opaque half
  assert.deepEqual(px(rgba, 39, 29), [200, 100, 50]); // 30% alpha: dropped like cv2.imdecode, not composited

  const cmyk = await decodeOnly({ path: fx('cmyk.jpg') });
  assert.deepEqual(cmyk.shape, [40, 60, 3]);
  const [lr, lg, lb] = px(cmyk, 5, 20);
  const [rr, , rb] = px(cmyk, 55, 20);
  assert.ok(lr > 200 && lg < 40 && lb < 40, `left half red, got ${lr},${lg},${lb}`);
  assert.ok(rb > 100 && rr < 60, `right half blue, got ${px(cmyk, 55, 20)}`);

  // stored 80x40 red|blue with EXIF orientation 6: displayed 40 wide, 80 high, red on top, blue below
  const exif = await decodeOnly({ path: fx('exif_rot90.jpg') });
  assert.deepEqual(exif.shape, [80, 40, 3]);
  assert.ok(px(exif, 20, 5)[0] > 240 && px(exif, 20, 5)[2] < 15, 'top is red');
  assert.ok(px(exif, 20, 75)[2] > 240 && px(exif, 20, 75)[0] < 15, 'bottom is blue');
  // a crop folded into the decode must use oriented coordinates: rows 30..49 straddle the red/blue edge at 40
  const crop = await buildTransforms([{ DecodeImage: {} }, { CropImage: { size: 20 } }, IDENTITY])({
    path: fx('exif_rot90.jpg'),
  });
  assert.deepEqual(crop.shape, [20, 20, 3]);
  assert.ok(px(crop, 10, 2)[0] > 240 && px(crop, 10, 17)[2] > 240, 'crop of the oriented image');
});

test('corrupt, truncated and missing files are errors naming the file', async () => {
  for (const f of ['truncated.jpg', 'not_an_image.png', 'missing.jpg']) {
    await assert.rejects(decodeOnly({ path: fx(f) }), (e: Error) => e.message.includes(fx(f)), f);
  }
});

test('CropImage takes the centre box exactly', async () => {
  const o = await buildTransforms([{ DecodeImage: {} }, { CropImage: { size: 100 } }, IDENTITY])({ path: coords });
  assert.deepEqual(o.shape, [100, 100, 3]);
  assert.deepEqual(px(o, 0, 0), [75, 75, 0]); // (250 - 100) // 2
  assert.deepEqual(px(o, 99, 99), [174, 174, 0]);
  const odd = await buildTransforms([{ DecodeImage: {} }, { CropImage: { size: [51, 20] } }, IDENTITY])({
    path: coords,
  });
  assert.deepEqual(odd.shape, [20, 51, 3]);
  assert.deepEqual(px(odd, 0, 0), [99, 115, 0]); // (250-51)//2 = 99, (250-20)//2 = 115
});

test('ResizeImage resize_short rounds half to even like Python', async () => {
  assert.equal(roundHalfEven(12.5), 12);
  assert.equal(roundHalfEven(17.5), 18);
  assert.equal(roundHalfEven(341.3333), 341);
  const cases: Array<[number, number, number, [number, number]]> = [
    [10, 4, 5, [5, 12]], // p = 1.25: 12.5 -> 12
    [14, 4, 5, [5, 18]], // 17.5 -> 18
    [500, 375, 256, [256, 341]],
  ];
  for (const [w, h, short, [eh, ew]] of cases) {
    const f = path.join(tmp, `r${w}x${h}.png`);
    await sharp({ create: { width: w, height: h, channels: 3, background: '#808080' } })
      .png()
      .toFile(f);
    const o = await buildTransforms([{ DecodeImage: {} }, { ResizeImage: { resize_short: short } }, IDENTITY])({
      path: f,
    });
    assert.deepEqual(o.shape, [eh, ew, 3], `${w}x${h} resize_short ${short}`);
  }
});

/** cv2.resize INTER_LINEAR (half-pixel centres, no antialiasing), the reference for pixel values */
function cvBilinear(src: TransformOutput, ow: number, oh: number): Float32Array {
  return cvBilinearPixels(src.data, src.shape[1], src.shape[0], ow, oh);
}

test('resized pixels agree with OpenCV bilinear within interpolation tolerance', async () => {
  const full = await decodeOnly({ path: fx('photo_500x375.jpg') });
  const o = await buildTransforms([{ DecodeImage: {} }, { ResizeImage: { resize_short: 256 } }, IDENTITY])({
    path: fx('photo_500x375.jpg'),
  });
  assert.deepEqual(o.shape, [256, 341, 3]);
  const ref = cvBilinear(full, 341, 256);
  let sum = 0;
  for (let i = 0; i < ref.length; i++) sum += Math.abs(ref[i] - o.data[i]);
  const mae = sum / ref.length;
  assert.ok(mae < 1.5, `mean abs difference to cv2 bilinear ${mae.toFixed(3)} grey levels`);
});

test('a high-frequency image halved agrees with OpenCV bilinear pixel by pixel, not just on average', async () => {
  // a one-pixel checkerboard (the highest frequency an image has) on steep ramps, kept inside 0..255: halving must
  // average each pixel pair of the checkerboard (nearest-neighbour keeps one of them: off by 25) at the right place
  // (half a pixel off or a pixel shifted moves the ramps: off by 3 to 6 grey levels, or hits the checkerboard)
  const W = 48,
    H = 32;
  const buf = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const ramps = [3 * x + 2 * y, 2 * x + 3 * y, 200 - 2 * x - 3 * y];
      for (let c = 0; c < 3; c++) buf[(y * W + x) * 3 + c] = 25 + ramps[c] + ((x + y) % 2 ? 25 : -25);
    }
  }
  const file = path.join(tmp, 'checker_ramps.png');
  await sharp(buf, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toFile(file);
  const full = await decodeOnly({ path: file });
  assert.deepEqual(Array.from(full.data), Array.from(buf), 'the PNG holds exactly the pattern');
  const o = await buildTransforms([{ DecodeImage: {} }, { ResizeImage: { size: [W / 2, H / 2] } }, IDENTITY])({
    path: file,
  });
  assert.deepEqual(o.shape, [H / 2, W / 2, 3]);
  const ref = cvBilinear(full, W / 2, H / 2);
  let interior = 0;
  let border = 0;
  for (let y = 0; y < H / 2; y++) {
    for (let x = 0; x < W / 2; x++) {
      for (let c = 0; c < 3; c++) {
        const d = Math.abs(ref[(y * (W / 2) + x) * 3 + c] - o.data[(y * (W / 2) + x) * 3 + c]);
        if (x === 0 || y === 0 || x === W / 2 - 1 || y === H / 2 - 1) border = Math.max(border, d);
        else interior = Math.max(interior, d);
      }
    }
  }
  // inside, only rounding to uint8 differs; at the edge OpenCV repeats the edge pixel into its 2 taps, libvips into
  // its 4 (it also smooths when it shrinks), which moves the checkerboard's average by up to 25/8
  assert.ok(interior <= 1, `largest difference to cv2 bilinear inside the image: ${interior.toFixed(2)} grey levels`);
  assert.ok(border <= 3.2, `largest difference to cv2 bilinear on the edge: ${border.toFixed(2)} grey levels`);
});

test('RandCropImage: the PaddleClas box formula, exact box and size, seeded', async () => {
  // formula check with a scripted rng
  const draws = [0.5, 0.25, 0.0, 0.999];
  const scripted = {
    random: () => draws.shift()!,
    uniform(lo: number, hi: number) {
      return lo + (hi - lo) * this.random();
    },
    randint(lo: number, hi: number) {
      return lo + Math.floor(this.random() * (hi - lo + 1));
    },
    choice<T>(a: readonly T[]) {
      return a[0];
    },
  };
  const box = randCropBox(500, 375, [0.08, 1], [3 / 4, 4 / 3], scripted);
  const ar = Math.sqrt(3 / 4 + 0.5 * (4 / 3 - 3 / 4));
  const bound = Math.min(500 / 375 / (ar * ar), 375 / 500 / (1 / (ar * ar)));
  const T = Math.sqrt(500 * 375 * (0.08 + 0.25 * (Math.min(1, bound) - 0.08)));
  const cw = Math.trunc(T * ar),
    ch = Math.trunc(T / ar);
  assert.deepEqual(box, { left: 0, top: Math.floor(0.999 * (375 - ch + 1)), width: cw, height: ch });

  // in the pipeline: replay the same rng, then read the box back from the coordinate image
  const fn = buildTransforms([{ DecodeImage: {} }, { RandCropImage: { size: 64 } }, IDENTITY], { seed: 7 });
  for (const callSeed of [1, 2, 3]) {
    const expect = randCropBox(250, 250, [0.08, 1], [3 / 4, 4 / 3], sampleRng(7, callSeed, coords));
    const o = await fn({ path: coords }, callSeed);
    assert.deepEqual(o.shape, [64, 64, 3]);
    // a linear ramp stays linear under resampling: interior output x maps to left + (x + 0.5) * cw / 64 - 0.5
    for (const x of [8, 32, 55]) {
      const wantR = expect.left + ((x + 0.5) * expect.width) / 64 - 0.5;
      const wantG = expect.top + ((x + 0.5) * expect.height) / 64 - 0.5;
      assert.ok(Math.abs(px(o, x, 32)[0] - wantR) <= 1.01, `seed ${callSeed} x=${x}: R ${px(o, x, 32)[0]} vs ${wantR}`);
      assert.ok(Math.abs(px(o, 32, x)[1] - wantG) <= 1.01, `seed ${callSeed} y=${x}: G ${px(o, 32, x)[1]} vs ${wantG}`);
    }
    const again = await fn({ path: coords }, callSeed);
    assert.deepEqual(again.data, o.data, 'same seed, same pixels');
  }
  const a = await fn({ path: coords }, 1);
  const b = await fn({ path: coords }, 2);
  assert.notDeepEqual(a.data, b.data);
});

test('RandFlipImage mirrors about half of the time; NormalizeImage and ToCHWImage are exact', async () => {
  const plain = await buildTransforms([{ DecodeImage: {} }, { CropImage: { size: 100 } }, IDENTITY])({ path: coords });
  const fn = buildTransforms([
    { DecodeImage: {} },
    { CropImage: { size: 100 } },
    { RandFlipImage: { flip_code: 1 } },
    IDENTITY,
  ]);
  let flipped = 0;
  for (let s = 0; s < 40; s++) {
    const o = await fn({ path: coords }, s);
    if (px(o, 0, 0)[0] === 174) {
      flipped++;
      assert.deepEqual(px(o, 99, 10), px(plain, 0, 10));
    } else assert.deepEqual(o.data, plain.data);
  }
  // the draws are the sample rng's (seed 0, call seed s, the file's path): replayed, they say exactly which calls
  // flip, so the count is checked exactly instead of against a band that a random temp path fails now and then
  let expected = 0;
  for (let s = 0; s < 40; s++) if (sampleRng(0, s, coords).randint(0, 1) === 1) expected++;
  assert.equal(flipped, expected, `flipped ${flipped}/40, the rng says ${expected}`);
  assert.ok(expected > 0 && expected < 40, `both outcomes occur (${expected}/40)`);

  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const norm = buildTransforms([
    { DecodeImage: {} },
    { NormalizeImage: { scale: '1./255.', mean, std, order: '' } },
    { ToCHWImage: null },
  ]);
  const chw = await norm({ path: fx('rgba.png') });
  assert.equal(chw.layout, 'CHW');
  assert.deepEqual(chw.shape, [3, 30, 40]);
  const raw = await decodeOnly({ path: fx('rgba.png') });
  for (const [x, y] of [
    [0, 0],
    [39, 29],
    [25, 3],
  ]) {
    for (let c = 0; c < 3; c++) {
      const want = Math.fround((raw.data[(y * 40 + x) * 3 + c] * (1 / 255) - mean[c]) / std[c]);
      assert.equal(chw.data[c * 1200 + y * 40 + x], want);
    }
  }
  const nhwc = toNHWCBatch([chw, chw]);
  assert.deepEqual(nhwc.shape, [2, 30, 40, 3]);
  assert.equal(nhwc.data[1200 * 3 + (29 * 40 + 39) * 3 + 2], chw.data[2 * 1200 + 29 * 40 + 39]);
});

test('the decode cache: a cached sample gives exactly the uncached pixels, flips included; the budget bounds it', async () => {
  const ops = [{ DecodeImage: {} }, { ResizeImage: { size: 32 } }, { RandFlipImage: { flip_code: 1 } }, IDENTITY];
  const cache = new DecodeCache(1 << 20);
  const cached = buildTransforms(ops, { seed: 3, cache });
  const plain = buildTransforms(ops, { seed: 3 });
  const files = [coords, fx('rgba.png'), fx('grey.png')];
  for (let epoch = 0; epoch < 3; epoch++) {
    for (const f of files) {
      for (let s = 0; s < 4; s++) {
        const want = await plain({ path: f }, epoch * 10 + s);
        const got = await cached({ path: f }, epoch * 10 + s);
        assert.deepEqual(got.shape, want.shape);
        assert.deepEqual(got.data, want.data, `${path.basename(f)}, call ${epoch * 10 + s}`);
      }
    }
  }
  assert.equal(cache.size, 3);
  assert.equal(cache.bytes, 3 * 32 * 32 * 3);
  assert.equal(cache.misses, 3);
  assert.equal(cache.hits, 3 * 3 * 4 - 3);
  // a budget of two images keeps two and decodes the third every time
  const small = new DecodeCache(2 * 32 * 32 * 3);
  const fn = buildTransforms(ops, { seed: 3, cache: small });
  for (let k = 0; k < 2; k++) for (const f of files) await fn({ path: f });
  assert.equal(small.size, 2);
  assert.equal(small.misses, 4);
  // a list whose first op after DecodeImage is random is never cached (its decoded images have no fixed size)
  const none = new DecodeCache(1 << 20);
  await buildTransforms([{ DecodeImage: {} }, { RandCropImage: { size: 16 } }, IDENTITY], { cache: none })({
    path: coords,
  });
  assert.equal(none.size + none.misses + none.hits, 0);
});

test('the shared decode cache: what one worker decoded serves another through one /dev/shm file', async () => {
  const native = nativeShm();
  assert.ok(native, 'the prebuilt mmap module loads on this linux-x64 machine');
  const dir = fs.mkdtempSync('/dev/shm/decode-cache-test-');
  try {
    const file = path.join(dir, 'decoded.bin');
    const files = [coords, fx('rgba.png'), fx('grey.png')];
    // two "workers": two caches on the same file, as two processes would map it
    const a = new SharedDecodeCache(file, files.length, 1 << 20, native);
    const b = new SharedDecodeCache(file, files.length, 1 << 20, native);
    a.unlinkName(); // both have it open: the name can go, the pages stay
    assert.equal(fs.existsSync(file), false);
    const ops = [{ DecodeImage: {} }, { ResizeImage: { size: 32 } }, { RandFlipImage: { flip_code: 1 } }, IDENTITY];
    const plain = buildTransforms(ops, { seed: 5 });
    const viaA = buildTransforms(ops, { seed: 5, cache: a });
    const viaB = buildTransforms(ops, { seed: 5, cache: b });
    for (let i = 0; i < files.length; i++) await viaA({ path: files[i], index: i }, 1);
    assert.equal(a.misses, 3);
    for (let call = 0; call < 4; call++) {
      for (let i = 0; i < files.length; i++) {
        const got = await viaB({ path: files[i], index: i }, call);
        assert.deepEqual(
          got.data,
          (await plain({ path: files[i] }, call)).data,
          `${path.basename(files[i])}, call ${call}`,
        );
      }
    }
    assert.equal(b.misses, 0, 'worker B decoded nothing');
    assert.equal(b.hits, 12);
    assert.equal(b.size, 3);
    assert.match(b.describe(), /3 of 3 images \(0\.0 MB\) shared/);
    // an image of another size is not shared; a budget too small for the whole list turns the cache off
    b.put('x', { kind: 'raw', data: new Uint8Array(16 * 16 * 3), width: 16, height: 16 }, 0);
    const small = new SharedDecodeCache(path.join(dir, 'small.bin'), 100, 100 * 32 * 32 * 3 - 1, native);
    small.put('y', { kind: 'raw', data: new Uint8Array(32 * 32 * 3), width: 32, height: 32 }, 7);
    assert.equal(small.get('y', 7), undefined);
    assert.match(small.describe(), /off/);
    // opening while another worker is half-way through claiming the header: whichever of the two values it has
    // stored so far (the order once used stored the magic first, and a worker opening then saw a count of 0)
    const half = path.join(dir, 'half.bin');
    for (const [at, value] of [
      [3, files.length],
      [0, 0x31434448],
    ]) {
      const header = new Int32Array(16);
      header[at] = value;
      fs.writeFileSync(half, new Uint8Array(header.buffer), { mode: 0o600 });
      assert.doesNotThrow(() => new SharedDecodeCache(half, files.length, 1 << 20, native), `header[${at}] set`);
    }
    // a file of another list (another sample count) is refused
    assert.throws(
      () => new SharedDecodeCache(half, files.length + 1, 1 << 20, native),
      /holds another list's images \(3 samples/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('NormalizeImage.scale strings are evaluated like PaddleClas', () => {
  assert.equal(parseScale('1./255.'), 1 / 255);
  assert.equal(parseScale('1.0/255.0'), 1 / 255);
  assert.equal(parseScale(0.5), 0.5);
  assert.equal(parseScale('0.00392'), 0.00392);
  assert.throws(() => parseScale('__import__("os")'), /NormalizeImage.scale/);
  assert.throws(
    () => buildTransforms([{ DecodeImage: {} }, { Blur: {} }]),
    /transforms\[1\] \(Blur\).*supported: DecodeImage/,
  );
  assert.throws(() => buildTransforms([{ RandCropImage: { size: 224 } }]), /transforms\[0\] must be DecodeImage/);
});

test('AutoAugment (ImageNet policy) and RandomErasing are seeded and keep the shape', async () => {
  const fn = buildTransforms(
    [
      { DecodeImage: {} },
      { RandCropImage: { size: 48 } },
      { AutoAugment: null },
      IDENTITY,
      { RandomErasing: { EPSILON: 1, mean: [-9, -9, -9] } },
    ],
    { seed: 3 },
  );
  const outs = [];
  for (let s = 0; s < 6; s++) {
    const o = await fn({ path: fx('photo_500x375.jpg') }, s);
    assert.deepEqual(o.shape, [48, 48, 3]);
    assert.deepEqual((await fn({ path: fx('photo_500x375.jpg') }, s)).data, o.data, 'reproducible');
    const erased = o.data.filter((v) => v === -9).length;
    assert.ok(erased >= 3 * 4 && erased % 3 === 0, `an erased box filled with the mean (${erased} values)`);
    outs.push(o);
  }
  assert.notDeepEqual(outs[0].data, outs[1].data);
});

test('AutoAugment ops follow PIL', () => {
  const img: RawImage = {
    kind: 'raw',
    width: 4,
    height: 1,
    data: Uint8Array.from([10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40]),
  };
  assert.deepEqual(Array.from(autocontrast(img).data.filter((_, i) => i % 3 === 0)), [0, 85, 170, 255]);
  // PIL: step = (total - count of the last bin) // 255 is 0 for 4 pixels -> unchanged
  assert.deepEqual(equalize(img).data, img.data);
  const two: RawImage = {
    kind: 'raw',
    width: 512,
    height: 1,
    data: new Uint8Array(512 * 3).map((_, i) => (i < 768 ? 10 : 40)),
  };
  const eq = equalize(two).data; // step = (512 - 256) // 255 = 1: 10 -> 0, 40 -> min(255, 256)
  assert.deepEqual([eq[0], eq[1535]], [0, 255]);
  const rng = sampleRng(0, 0, 'x');
  assert.deepEqual(Array.from(applyOp(img, 'posterize', 4, rng).data.slice(0, 4)), [0, 0, 0, 16]);
  assert.deepEqual(
    Array.from(applyOp(img, 'solarize', 25, rng).data.filter((_, i) => i % 3 === 0)),
    [10, 20, 225, 215],
  );
  assert.deepEqual(Array.from(applyOp(img, 'invert', 0, rng).data.slice(0, 3)), [245, 245, 245]);
  const rot = applyOp({ kind: 'raw', width: 9, height: 9, data: new Uint8Array(243).fill(200) }, 'rotate', 30, rng);
  assert.equal(rot.data[0], 128, 'corners filled with grey');
  assert.equal(rot.data[(4 * 9 + 4) * 3], 200, 'centre kept');
});

test('inferPreprocess: resize_short 256, centre crop 224, ImageNet normalization, HWC', async () => {
  const o = await inferPreprocess(fx('photo_500x375.jpg'));
  assert.deepEqual(o.shape, [224, 224, 3]);
  const ref = await buildTransforms([
    { DecodeImage: {} },
    { ResizeImage: { resize_short: 256 } },
    { CropImage: { size: 224 } },
    { NormalizeImage: { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } },
  ])({ path: fx('photo_500x375.jpg') });
  assert.deepEqual(o.data, ref.data);
  assert.ok(o.data.every(Number.isFinite));
});
