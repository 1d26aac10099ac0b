/**
 * Hostile files: every parser the tool runs on user-supplied files (.pth weights, checkpoints, YAML configs,
 * images) fails in seconds, with bounded memory and an error naming the file. The hostile files are crafted
 * here, small, at test time; each case runs in its own process with a heap cap and a time limit, so that a
 * parser that hangs or allocates without bound fails its test instead of taking the runner down.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deflateSync } from 'node:zlib';
import { test } from 'node:test';
import { parsePth } from '../worker/checkpoint/pth.js';
import { DataLoader } from '../worker/data/loader.js';
import { buildTransforms, type PaddleTransformOp } from '../worker/data/transforms.js';
import { loadConfig } from '../shared/config.js';
import { distUrl, runIsolated, type Isolated } from './helpers/isolated.js';
import { floats, patchOriginalSize, pthZip, type TensorSpec } from './helpers/pth_writer.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-'));
const PTH = distUrl(import.meta.url, 'worker/checkpoint/pth.js');
/** what "seconds" and "bounded memory" mean for one hostile file */
const LIMIT_MS = 20_000;
const MAX_RSS_MB = 400;

async function readPthIsolated(file: string): Promise<Isolated> {
  return runIsolated(
    `
    const { readPth } = await import(${JSON.stringify(PTH)});
    const t0 = Date.now();
    try {
      const sd = await readPth(${JSON.stringify(file)});
      console.log('RESULT ' + JSON.stringify({ ok: true, tensors: [...sd].map(([n, t]) => [n, t.data.length]), ms: Date.now() - t0 }));
    } catch (e) {
      console.log('RESULT ' + JSON.stringify({ ok: false, message: e.message, ms: Date.now() - t0 }));
    }`,
    { timeoutMs: LIMIT_MS },
  );
}

function assertRefused(r: Isolated, file: string, pattern: RegExp): void {
  assert.ok(!r.timedOut, `did not finish within ${LIMIT_MS / 1000} s`);
  assert.ok(r.result, `no result: code ${r.code} ${r.signal ?? ''}\n${r.stderr.slice(-2000)}`);
  assert.equal(r.result.ok, false, `accepted: ${JSON.stringify(r.result).slice(0, 300)}`);
  assert.ok(r.result.message.startsWith(file), `the error names the file: ${r.result.message}`);
  assert.match(r.result.message, pattern);
  assert.ok(r.maxRssMb! < MAX_RSS_MB, `peak RSS ${r.maxRssMb!.toFixed(0)} MB`);
}

function writePth(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  return file;
}

const plain: TensorSpec = { name: 'w', key: '0', numel: 6, size: [2, 3], stride: [3, 1] };

test('.pth files crafted here parse like torch.save files (the writer the hostile cases below build on)', () => {
  const sd = parsePth(pthZip([plain], { 0: floats(6) }), 'ok.pth');
  assert.deepEqual(sd.get('w')?.shape, [2, 3]);
  assert.deepEqual([...sd.get('w')!.data], [0, 1, 2, 3, 4, 5]);
  // stride 0 is legitimate on a dimension of size 1
  const unit = parsePth(pthZip([{ ...plain, size: [1, 6], stride: [0, 1] }], { 0: floats(6) }), 'unit.pth');
  assert.deepEqual(unit.get('w')?.shape, [1, 6]);
});

test('.pth: stride 0 on a dimension longer than 1 (a 4 GiB tensor from one float) is refused', async () => {
  const file = writePth(
    'stride0.pth',
    pthZip([{ name: 'w', key: '0', numel: 1, size: [1 << 30], stride: [0] }], { 0: floats(1) }),
  );
  assert.ok(fs.statSync(file).size < 1024);
  assertRefused(await readPthIsolated(file), file, /tensor w: .*stride 0 on dimension 0 of size 1073741824/);
});

test('.pth: a tensor may not have more elements than its storage declares (overlapping strides, oversized entries)', async () => {
  // 2^24 elements out of a 8191-element storage through strides (1, 1)
  const overlap = writePth(
    'overlap.pth',
    pthZip([{ name: 'w', key: '0', numel: 8191, size: [4096, 4096], stride: [1, 1] }], { 0: floats(8191) }),
  );
  assertRefused(
    await readPthIsolated(overlap),
    overlap,
    /tensor w: 16777216 elements, more than the 8191 its storage 0 declares/,
  );
  // the storage entry holds 16 floats but the pickle declares 4: the entry is refused before it is read
  const oversized = writePth(
    'oversized.pth',
    pthZip([{ name: 'w', key: '0', numel: 4, size: [16], stride: [1] }], { 0: floats(16) }),
  );
  assertRefused(
    await readPthIsolated(oversized),
    oversized,
    /archive\/data\/0 is 64 bytes, but data\.pkl declares 4 float32 \(16 bytes\)/,
  );
});

test(".pth: only data.pkl and the storages it uses are inflated; an entry's size is checked before inflating", async () => {
  // an unused entry whose deflate stream is garbage: never inflated, so the file loads
  const corrupt = corruptEntry(
    pthZip([plain], { 0: floats(6) }, { 'archive/junk.bin': [new Uint8Array(4096).fill(7), { level: 9 }] }),
    'archive/junk.bin',
  );
  const okFile = writePth('unused-corrupt-entry.pth', corrupt);
  const r = await readPthIsolated(okFile);
  assert.equal(r.result?.ok, true, JSON.stringify(r.result));
  assert.deepEqual(r.result.tensors, [['w', 6]]);
  // a used storage whose zip header claims 2 GiB: refused from the header, nothing allocated
  const claims = writePth(
    'claims-2gib.pth',
    patchOriginalSize(pthZip([plain], { 0: floats(6) }), 'archive/data/0', 0x7fffffff),
  );
  assertRefused(
    await readPthIsolated(claims),
    claims,
    /archive\/data\/0 is 2147483647 bytes, but data\.pkl declares 6 float32 \(24 bytes\)/,
  );
  // a data.pkl that claims to inflate to 4 GiB
  const bigPickle = writePth(
    'claims-4gib-pickle.pth',
    patchOriginalSize(pthZip([plain], { 0: floats(6) }), 'archive/data.pkl', 0xfffffff0),
  );
  assertRefused(await readPthIsolated(bigPickle), bigPickle, /archive\/data\.pkl is 4294967280 bytes/);
});

/** overwrite an entry's compressed bytes with 0xff (an invalid deflate block type) */
function corruptEntry(zip: Uint8Array, name: string): Uint8Array {
  const b = Buffer.from(zip);
  const nameBytes = Buffer.from(name);
  for (let i = 0; i + 30 < b.length; i++) {
    if (
      b.readUInt32LE(i) === 0x04034b50 &&
      b.readUInt16LE(i + 26) === nameBytes.length &&
      b.subarray(i + 30, i + 30 + nameBytes.length).equals(nameBytes)
    ) {
      const start = i + 30 + nameBytes.length + b.readUInt16LE(i + 28);
      b.fill(0xff, start, start + b.readUInt32LE(i + 18));
      return new Uint8Array(b);
    }
  }
  throw new Error(`no entry ${name}`);
}

// ---------------------------------------------------------------------------------------------------------------
// checkpoints

const CKPT = distUrl(import.meta.url, 'worker/checkpoint/checkpoint.js');

function checkpointDir(name: string, manifest: unknown, bin?: Uint8Array): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(
    path.join(d, 'state.json'),
    JSON.stringify({ epoch: 1, iteration: 1, bestTop1: 0, bestEpoch: 0, model: 'HarDNet39ds', classesNum: 10 }),
  );
  fs.writeFileSync(path.join(d, 'weights.json'), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  if (bin) fs.writeFileSync(path.join(d, 'weights.bin'), bin);
  return d;
}
const manifest = (paths: string[], weights: unknown[]) => ({
  format: 'hardnet-launch-checkpoint',
  version: 1,
  weightsManifest: [{ paths, weights }],
});
const W = [{ name: 'a', shape: [2, 3], dtype: 'float32' }];

async function readWeightsIsolated(d: string): Promise<Isolated> {
  return runIsolated(
    `
    await import('@tensorflow/tfjs-backend-cpu');
    const { readCheckpointTensors } = await import(${JSON.stringify(CKPT)});
    const t0 = Date.now();
    try {
      const m = readCheckpointTensors(${JSON.stringify(d)}, 'weights');
      console.log('RESULT ' + JSON.stringify({ ok: true, names: [...m.keys()], ms: Date.now() - t0 }));
    } catch (e) {
      console.log('RESULT ' + JSON.stringify({ ok: false, message: e.message, ms: Date.now() - t0 }));
    }`,
    { timeoutMs: LIMIT_MS, maxOldSpaceMb: 512 },
  );
}

test('checkpoints: weights.json paths must be plain file names in the checkpoint directory; sizes are checked before reading', async () => {
  const good = checkpointDir('ck-good', manifest(['weights.bin'], W), floats(6));
  const ok = await readWeightsIsolated(good);
  assert.deepEqual(ok.result, { ok: true, names: ['a'], ms: ok.result?.ms }, ok.stderr);

  const json = (d: string) => path.join(d, 'weights.json');
  const escaping = checkpointDir('ck-escape', manifest(['../../../../../../dev/zero'], W));
  assertRefused(
    await readWeightsIsolated(escaping),
    json(escaping),
    /paths\[0\] "\.\.\/.*dev\/zero" is not a plain file name/,
  );
  const absolute = checkpointDir('ck-absolute', manifest(['/dev/zero'], W));
  assertRefused(
    await readWeightsIsolated(absolute),
    json(absolute),
    /paths\[0\] "\/dev\/zero" is not a plain file name/,
  );

  const link = checkpointDir('ck-symlink', manifest(['weights.bin'], W));
  fs.symlinkSync('/dev/zero', path.join(link, 'weights.bin'));
  assertRefused(
    await readWeightsIsolated(link),
    path.join(link, 'weights.bin'),
    /a symlink; a checkpoint holds regular files/,
  );

  const short = checkpointDir('ck-short', manifest(['weights.bin'], W), floats(5));
  assertRefused(
    await readWeightsIsolated(short),
    path.join(short, 'weights.bin'),
    /weights\.bin is 20 bytes, but the manifest describes 24/,
  );
  const huge = checkpointDir(
    'ck-huge',
    manifest(['weights.bin'], [{ name: 'a', shape: [1e9, 1e9], dtype: 'float32' }]),
    floats(6),
  );
  assertRefused(
    await readWeightsIsolated(huge),
    json(huge),
    /the manifest describes 4000000000000000000 bytes of tensors, more than/,
  );
  const garbage = checkpointDir(
    'ck-garbage',
    '{"format": "hardnet-launch-checkpoint", "weightsManifest": [{"paths": [',
  );
  assertRefused(await readWeightsIsolated(garbage), json(garbage), /not valid JSON/);
});

// ---------------------------------------------------------------------------------------------------------------
// YAML

test('YAML: a billion-laughs config fails in seconds with bounded memory, naming the file', async () => {
  const lines = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  const names = 'abcdefghi';
  for (let i = 1; i < names.length; i++)
    lines.push(
      `${names[i]}: &${names[i]} [${Array(9)
        .fill(`*${names[i - 1]}`)
        .join(', ')}]`,
    );
  const file = path.join(dir, 'laughs.yaml');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const cfg = distUrl(import.meta.url, 'shared/config.js');
  const r = await runIsolated(
    `
    const { loadConfig } = await import(${JSON.stringify(cfg)});
    try { loadConfig(${JSON.stringify(file)}, [], { warn: () => {} }); console.log('RESULT ' + JSON.stringify({ ok: true })); }
    catch (e) { console.log('RESULT ' + JSON.stringify({ ok: false, message: e.message })); }`,
    { timeoutMs: LIMIT_MS },
  );
  assert.ok(!r.timedOut, `loadConfig did not finish within ${LIMIT_MS / 1000} s`);
  assert.equal(r.result?.ok, false, r.stderr.slice(-1000));
  assert.match(r.result.message, new RegExp(`config ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  assert.match(r.result.message, /alias/);
  assert.ok(r.maxRssMb! < MAX_RSS_MB, `peak RSS ${r.maxRssMb!.toFixed(0)} MB`);

  // many aliases, each harmless, are capped too
  const many = path.join(dir, 'aliases.yaml');
  fs.writeFileSync(many, `x: &x 1\nl: [${Array(5000).fill('*x').join(', ')}]\n`);
  assert.throws(
    () => loadConfig(many, [], { warn: () => {} }),
    (e: Error) => e.message.includes(many) && /alias/.test(e.message),
  );
});

// ---------------------------------------------------------------------------------------------------------------
// images

/** A grey PNG of width x height, all zeros: a few hundred KB on disk for tens of megapixels. */
function greyPng(file: string, width: number, height: number): void {
  const crc = (buf: Buffer) => {
    let c = ~0;
    for (const byte of buf) {
      c ^= byte;
      for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 0; // 8-bit greyscale
  const raw = Buffer.alloc(height * (width + 1)); // filter byte 0 + zeros per row
  fs.writeFileSync(
    file,
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr),
      chunk('IDAT', deflateSync(raw, { level: 9 })),
      chunk('IEND', Buffer.alloc(0)),
    ]),
  );
}

const VALID_OPS: PaddleTransformOp[] = [
  { DecodeImage: { to_rgb: true, channel_first: false } },
  { ResizeImage: { resize_short: 16 } },
  { CropImage: { size: 16 } },
  { NormalizeImage: { scale: '1./255.', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: '' } },
  { ToCHWImage: null },
];

test('images above max_image_pixels (default 50 megapixels) are refused before decoding, like any bad sample', async () => {
  const big = path.join(dir, 'big.png');
  greyPng(big, 7300, 7300); // 53.3 megapixels
  const small = path.join(dir, 'small.png');
  greyPng(small, 40, 30);
  assert.ok(fs.statSync(big).size < 1 << 20);
  const fn = buildTransforms(VALID_OPS, { channelsLast: true });
  const t0 = Date.now();
  await assert.rejects(
    fn({ path: big }),
    (e: Error) => e.message.includes(big) && /53290000 pixels.*max_image_pixels \(50000000\)/.test(e.message),
  );
  assert.ok(Date.now() - t0 < 5000);
  assert.deepEqual((await fn({ path: small })).shape, [16, 16, 3]);
  // the key raises the limit
  const raised = buildTransforms(VALID_OPS, { channelsLast: true, maxImagePixels: 60_000_000 });
  assert.deepEqual((await raised({ path: big })).shape, [16, 16, 3]);

  // in a loader: logged and replaced, or an error under strict_data
  const samples = [
    { path: big, label: 0, line: 1 },
    { path: small, label: 1, line: 2 },
  ];
  const logs: string[] = [];
  const loader = new DataLoader({ samples, transforms: VALID_OPS, batchSize: 2, log: (m) => logs.push(m) });
  for await (const b of loader) assert.deepEqual(b.shape, [2, 16, 16, 3]);
  assert.ok(
    logs.some((l) => l.includes(big) && l.includes('max_image_pixels') && l.includes('replaced')),
    logs.join('\n'),
  );
  const strict = new DataLoader({ samples, transforms: VALID_OPS, batchSize: 2, strictData: true, log: () => {} });
  await assert.rejects(async () => {
    for await (const _ of strict) {
      /* drain */
    }
  }, /bad sample .*big\.png.*max_image_pixels.*strict_data/);
});

test('max_image_pixels is a config key (default 50000000)', () => {
  const quick = loadConfig(undefined, [], { warn: () => {} });
  assert.equal(quick.max_image_pixels, 50_000_000);
  assert.equal(loadConfig(undefined, ['max_image_pixels=100000000'], { warn: () => {} }).max_image_pixels, 100_000_000);
  assert.throws(() => loadConfig(undefined, ['max_image_pixels=0'], { warn: () => {} }), /max_image_pixels/);
});
