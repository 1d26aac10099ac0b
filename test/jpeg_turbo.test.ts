/**
 * libjpeg-turbo's cropped decode (worker/data/jpeg_turbo.ts) against sharp's decode + extract: the same pixels,
 * bit for bit, for every box (edges, 1-pixel boxes, boxes on and off the iMCU grid) of JPEGs of every common
 * subsampling, progressive and grey ones, high-frequency content included (where an upsampling difference at a
 * cropped edge shows); the files it must leave to sharp (CMYK, truncated, warned about, too many pixels) and how
 * the transforms route EXIF-rotated and ICC-tagged files; many decodes in flight at once.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { croppingRegion, decodeJpegBox, jpegTurboStatus, type JpegBox } from '../worker/data/jpeg_turbo.js';
import { buildTransforms, type PaddleTransformOp } from '../worker/data/transforms.js';
import { jpegHeader } from '../worker/data/header.js';
import { Mulberry32 } from '../shared/rng.js';
import { createRequire } from 'node:module';

// the encoder of the package that ships libturbojpeg: the subsamplings sharp cannot write (4:2:2, 4:4:0)
const turboEncoder = createRequire(import.meta.url)('@julusian/jpeg-turbo') as {
  compressSync(
    raw: Buffer,
    o: { format: number; width: number; height: number; subsampling: number; quality: number },
  ): Buffer;
  FORMAT_RGB: number;
  SAMP_422: number;
  SAMP_440: number;
};

const FIXTURES = path.resolve('test/fixtures/images');
const PHOTO = fs.readFileSync(path.join(FIXTURES, 'photo_500x375.jpg'));
const BIG = 50_000_000;
const TRAIN: PaddleTransformOp[] = [
  { DecodeImage: { to_rgb: true, channel_first: false } },
  { RandCropImage: { size: 224 } },
  { RandFlipImage: { flip_code: 1 } },
  { NormalizeImage: { scale: '1./255.', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: '' } },
];

const jpegs: Record<string, Buffer> = {};

before(async () => {
  // noise with a smooth ramp under it: every chroma sample differs from its neighbours
  const W = 333;
  const H = 250;
  const px = Buffer.alloc(W * H * 3);
  const rng = new Mulberry32(7);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) px[(y * W + x) * 3 + c] = (x * (c + 1) + y * 2 + Math.floor(rng.random() * 96)) & 255;
    }
  }
  const raw = { raw: { width: W, height: H, channels: 3 as const } };
  jpegs.photo = PHOTO;
  jpegs['noise 4:2:0'] = await sharp(px, raw).jpeg({ quality: 90, chromaSubsampling: '4:2:0' }).toBuffer();
  jpegs['noise 4:4:4'] = await sharp(px, raw).jpeg({ quality: 90, chromaSubsampling: '4:4:4' }).toBuffer();
  jpegs['noise progressive 4:2:0'] = await sharp(px, raw)
    .jpeg({ quality: 80, progressive: true, chromaSubsampling: '4:2:0' })
    .toBuffer();
  jpegs['noise grey'] = await sharp(px, raw).greyscale().jpeg({ quality: 85 }).toBuffer();
  for (const [name, subsampling] of [
    ['4:2:2', turboEncoder.SAMP_422],
    ['4:4:0', turboEncoder.SAMP_440],
  ] as const) {
    jpegs[`noise ${name}`] = turboEncoder.compressSync(px, {
      format: turboEncoder.FORMAT_RGB,
      width: W,
      height: H,
      subsampling,
      quality: 90,
    });
  }
  // a width that is not a multiple of the iMCU: the last column of iMCUs is partial
  jpegs['noise 4:2:0, 7 px wide'] = await sharp(px, raw)
    .extract({ left: 0, top: 0, width: 7, height: 40 })
    .jpeg({ quality: 90, chromaSubsampling: '4:2:0' })
    .toBuffer();
});

/** The bytes of a view, as a Buffer to compare. */
const bytes = (v: Uint8Array) => Buffer.from(v.buffer, v.byteOffset, v.length);

async function sharpBox(jpeg: Buffer, box: JpegBox): Promise<Buffer> {
  return sharp(jpeg, { failOn: 'truncated' }).extract(box).removeAlpha().toColourspace('srgb').raw().toBuffer();
}

/** The JPEG with an APP1 Exif block saying `orientation` after its SOI (no ICC profile, unlike sharp's metadata). */
function withOrientation(jpeg: Buffer, orientation: number): Buffer {
  const tiff = Buffer.from([
    ...[0x4d, 0x4d, 0, 42, 0, 0, 0, 8], // big-endian TIFF header, first IFD at 8
    ...[0, 1], // one entry: Orientation (0x0112), SHORT, count 1, value
    ...[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0],
    ...[0, 0, 0, 0], // no next IFD
  ]);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, 0, payload.length + 2]), payload]);
  return Buffer.concat([jpeg.subarray(0, 2), app1, jpeg.subarray(2)]);
}

/** The JPEG with its first segment of `marker` moved to just before the start of scan. */
function moveSegmentAfterFrame(jpeg: Buffer, marker: number): Buffer {
  const at = jpeg.indexOf(Buffer.from([0xff, marker]));
  const len = jpeg.readUInt16BE(at + 2) + 2;
  const segment = jpeg.subarray(at, at + len);
  const rest = Buffer.concat([jpeg.subarray(0, at), jpeg.subarray(at + len)]);
  const sos = rest.indexOf(Buffer.from([0xff, 0xda]));
  return Buffer.concat([rest.subarray(0, sos), segment, rest.subarray(sos)]);
}

/** The JPEG with 4 junk bytes before its start-of-scan marker (after the frame header, which stays readable). */
function withJunkBeforeScan(jpeg: Buffer): Buffer {
  const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  return Buffer.concat([jpeg.subarray(0, sos), Buffer.from([1, 2, 3, 4]), jpeg.subarray(sos)]);
}

function boxesOf(W: number, H: number, n: number, seed: number): JpegBox[] {
  const rng = new Mulberry32(seed);
  const r = (k: number) => Math.floor(rng.random() * k);
  const boxes: JpegBox[] = [
    { left: 0, top: 0, width: W, height: H },
    { left: 0, top: 0, width: 1, height: 1 },
    { left: W - 1, top: H - 1, width: 1, height: 1 },
    { left: Math.min(16, W - 1), top: 0, width: 1, height: H }, // a box starting on the iMCU grid
    { left: Math.min(17, W - 1), top: Math.min(3, H - 1), width: 1, height: 1 },
  ];
  while (boxes.length < n) {
    const width = 1 + r(W);
    const height = 1 + r(H);
    boxes.push({ left: r(W - width + 1), top: r(H - height + 1), width, height });
  }
  return boxes;
}

test('libjpeg-turbo is loaded on Linux (the optional dependencies are installed)', () => {
  const status = jpegTurboStatus();
  // @julusian/jpeg-turbo 2.3.0 ships libturbojpeg for these
  if (process.platform === 'linux' && ['x64', 'arm64', 'arm'].includes(process.arch)) {
    assert.equal(status.available, true, status.available ? '' : status.reason);
  } else {
    assert.equal(status.available, false);
  }
});

test('every box decodes to the pixels sharp decodes and extracts, bit for bit', async () => {
  for (const [name, jpeg] of Object.entries(jpegs)) {
    const head = jpegHeader(jpeg);
    assert.ok(head, name);
    for (const [i, box] of boxesOf(head.width, head.height, 60, name.length).entries()) {
      const ours = await decodeJpegBox(jpeg, head.width, head.height, box, BIG);
      assert.ok(ours, `${name}: box ${i} was left to sharp`);
      assert.equal(ours.width, box.width);
      assert.equal(ours.height, box.height);
      const ref = await sharpBox(jpeg, box);
      assert.equal(ours.data.length, ref.length, `${name} box ${JSON.stringify(box)}`);
      assert.ok(bytes(ours.data).equals(ref), `${name} box ${JSON.stringify(box)}`);
    }
  }
});

test('the decoded region is aligned to the iMCU grid, covers the box and half an iMCU beside it', () => {
  assert.deepEqual(croppingRegion(500, { left: 0, top: 5, width: 10, height: 7 }, 16), { x: 0, y: 5, w: 18, h: 7 });
  assert.deepEqual(croppingRegion(500, { left: 16, top: 0, width: 16, height: 1 }, 16), { x: 0, y: 0, w: 40, h: 1 });
  assert.deepEqual(croppingRegion(500, { left: 40, top: 0, width: 455, height: 1 }, 16), { x: 32, y: 0, w: 468, h: 1 });
  assert.deepEqual(croppingRegion(500, { left: 8, top: 0, width: 1, height: 1 }, 8), { x: 0, y: 0, w: 13, h: 1 });
});

test('CMYK, truncated, warned-about and too-large files are left to sharp', async () => {
  const cmyk = fs.readFileSync(path.join(FIXTURES, 'cmyk.jpg'));
  const c = jpegHeader(cmyk);
  assert.ok(c);
  assert.equal(await decodeJpegBox(cmyk, c.width, c.height, { left: 0, top: 0, width: 8, height: 8 }, BIG), undefined);

  const truncated = fs.readFileSync(path.join(FIXTURES, 'truncated.jpg'));
  const t = jpegHeader(truncated);
  assert.ok(t);
  const all = { left: 0, top: 0, width: t.width, height: t.height };
  assert.equal(await decodeJpegBox(truncated, t.width, t.height, all, BIG), undefined);

  // junk bytes before the scan's marker: libjpeg warns ("extraneous bytes before marker"), sharp accepts the file
  const extraneous = withJunkBeforeScan(PHOTO);
  const box = { left: 0, top: 300, width: 500, height: 75 };
  assert.equal(await decodeJpegBox(extraneous, 500, 375, box, BIG), undefined);
  assert.ok(await sharpBox(extraneous, box));

  // the library refuses more pixels than the caller's limit
  assert.equal(await decodeJpegBox(PHOTO, 500, 375, box, 500 * 375 - 1), undefined);
  assert.ok(await decodeJpegBox(PHOTO, 500, 375, box, 500 * 375));
  // a size that is not the frame's (a header misread) is not decoded here
  assert.equal(await decodeJpegBox(PHOTO, 375, 500, box, BIG), undefined);
  // not a JPEG at all
  assert.equal(await decodeJpegBox(Buffer.from('not a jpeg, just text'), 10, 10, box, BIG), undefined);
});

test('a file whose header libjpeg rejects does not spoil the decompressor for the next files', async () => {
  // sampling factors 5x5: past libjpeg's limit of 4, a fatal error in the header
  const bad = Buffer.from(PHOTO);
  const sof = bad.indexOf(Buffer.from([0xff, 0xc0]));
  bad[sof + 11] = 0x55;
  const before = jpegTurboStatus().decompressors;
  for (let i = 0; i < 3; i++) {
    assert.equal(await decodeJpegBox(bad, 500, 375, { left: 0, top: 0, width: 8, height: 8 }, BIG), undefined);
    const good = await decodeJpegBox(PHOTO, 500, 375, { left: 3, top: 4, width: 50, height: 60 }, BIG);
    assert.ok(good, `the good file after bad file ${i} is decoded here`);
  }
  assert.ok(jpegTurboStatus().decompressors <= before + 1, 'the spoiled decompressors are destroyed, not kept');
});

test('the train transforms give the same floats with and without libjpeg-turbo, rotated and ICC-tagged files included', async () => {
  // stored 500x375, shown 375x500: most boxes of the shown image fit the stored one, wrongly placed
  const rotated = withOrientation(PHOTO, 6);
  const icc = await sharp(PHOTO).withIccProfile('p3').jpeg({ quality: 90 }).toBuffer();
  const iccHead = jpegHeader(icc);
  assert.ok(iccHead?.iccProfile, 'the ICC-tagged test file carries a profile');
  // the same file with its APP2 segment moved after the frame header, where libvips still reads it
  const iccAfterFrame = moveSegmentAfterFrame(icc, 0xe2);
  assert.deepEqual(jpegHeader(iccAfterFrame), iccHead);
  assert.deepEqual(jpegHeader(rotated), { width: 500, height: 375, orientation: 6, iccProfile: false });
  const turbo = buildTransforms(TRAIN, { seed: 3, channelsLast: true });
  const plain = buildTransforms(TRAIN, { seed: 3, channelsLast: true, jpegTurbo: false });
  for (const [name, buffer] of [
    ['photo', PHOTO],
    ['rotated', rotated],
    ['icc', icc],
    ['noise', jpegs['noise 4:2:0']],
    ['icc after the frame header', iccAfterFrame],
  ] as const) {
    for (let call = 0; call < 12; call++) {
      const a = await turbo({ path: `${name}.jpg`, buffer }, call);
      const b = await plain({ path: `${name}.jpg`, buffer }, call);
      assert.deepEqual(a.shape, b.shape);
      assert.ok(Buffer.from(a.data.buffer).equals(Buffer.from(b.data.buffer)), `${name}, call ${call}`);
    }
  }
});

test('a truncated file is still a data error naming it, and a warned-about file still decodes', async () => {
  const fn = buildTransforms(TRAIN, { seed: 1, channelsLast: true });
  const file = path.join(FIXTURES, 'truncated.jpg');
  await assert.rejects(fn({ path: file }), (e: Error) => e.name === 'TransformError' && e.message.includes(file));
  const out = await fn({ path: 'extraneous.jpg', buffer: withJunkBeforeScan(PHOTO) });
  assert.deepEqual(out.shape, [224, 224, 3]);
});

test('64 decodes in flight at once each get their own box, and the decompressors are reused', async () => {
  const boxes = boxesOf(500, 375, 64, 11);
  const before = jpegTurboStatus().decompressors;
  const ours = await Promise.all(boxes.map((b) => decodeJpegBox(PHOTO, 500, 375, b, BIG)));
  const after = jpegTurboStatus().decompressors;
  assert.ok(after <= Math.max(before, 64), `${after} decompressors for 64 decodes in flight`);
  for (const b of boxes) await decodeJpegBox(PHOTO, 500, 375, b, BIG);
  assert.equal(jpegTurboStatus().decompressors, after, 'one at a time, the idle decompressors are reused');
  for (const [i, box] of boxes.entries()) {
    const ref = await sharpBox(PHOTO, box);
    const o = ours[i];
    assert.ok(o);
    assert.ok(bytes(o.data).equals(ref), `box ${i}`);
  }
});
