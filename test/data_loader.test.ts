import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DataError } from '../shared/errors.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { loadFileList } from '../worker/data/dataset.js';
import { DataLoader, loaderFromConfig, type Batch } from '../worker/data/loader.js';
import type { PaddleTransformOp } from '../worker/data/transforms.js';

let dir = '';
const N = 24;
const TRAIN: PaddleTransformOp[] = [
  { DecodeImage: { to_rgb: true, to_np: false, channel_first: false } },
  { RandCropImage: { size: 16 } },
  { RandFlipImage: { flip_code: 1 } },
  { NormalizeImage: { scale: '1./255.', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: '' } },
  { ToCHWImage: null },
];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'data-loader-'));
  const lines: string[] = [];
  for (let i = 0; i < N; i++) {
    // each image one flat colour whose red channel encodes its index: batches can be checked against labels
    await sharp({ create: { width: 40 + i, height: 30, channels: 3, background: { r: i * 10, g: 100, b: 50 } } })
      .png()
      .toFile(path.join(dir, `img${i}.png`));
    lines.push(`img${i}.png ${i % 5}`);
  }
  fs.writeFileSync(path.join(dir, 'good.txt'), lines.join('\n') + '\n');
  fs.copyFileSync(path.resolve('test/fixtures/images/truncated.jpg'), path.join(dir, 'truncated.jpg'));
  fs.writeFileSync(
    path.join(dir, 'bad.txt'),
    [...lines.slice(0, 10), 'truncated.jpg 1', 'missing.png 2', ...lines.slice(10)].join('\n') + '\n',
  );
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function collect(loader: DataLoader): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader) out.push(b);
  return out;
}

test('DataLoader yields NHWC float32 batches with matching labels', async () => {
  const samples = loadFileList({ fileList: path.join(dir, 'good.txt'), dataDir: dir, classesNum: 5 });
  const loader = new DataLoader({ samples, transforms: TRAIN, batchSize: 5, shuffle: true, dropLast: true, seed: 1 });
  assert.equal(loader.length, 4);
  const batches = await collect(loader);
  assert.equal(batches.length, 4);
  const seen = new Set<number>();
  for (const b of batches) {
    assert.deepEqual(b.shape, [5, 16, 16, 3]);
    assert.equal(b.images.length, 5 * 16 * 16 * 3);
    assert.ok(b.readerCost >= 0);
    b.indices.forEach((idx, k) => {
      seen.add(idx);
      assert.equal(b.labels[k], idx % 5);
      const red = b.images[k * 768] * 0.229 + 0.485; // undo normalization of the first pixel's R
      assert.ok(Math.abs(red * 255 - idx * 10) < 1, `image ${idx} in slot ${k}`);
    });
  }
  assert.equal(seen.size, 20);
  // epoch 1 is a different order, and repeating epoch 0 gives the same pixels
  const e1 = await collect(loader);
  assert.notDeepEqual(
    e1.map((b) => b.indices),
    batches.map((b) => b.indices),
  );
  loader.setEpoch(0);
  const again = await collect(loader);
  assert.deepEqual(
    again.map((b) => b.indices),
    batches.map((b) => b.indices),
  );
  assert.deepEqual(again[2].images, batches[2].images);
});

test('prefetch: every batch arrives once, with its reader_cost; released buffers are reused', async () => {
  // how small reader_cost gets is a speed figure (bench/data.ts prints it), not something a test can time
  const samples = loadFileList({ fileList: path.join(dir, 'good.txt'), dataDir: dir });
  const loader = new DataLoader({ samples, transforms: TRAIN, batchSize: 4, prefetch: 2 });
  const costs: number[] = [];
  const seen = new Set<number>();
  const buffers = new Set<ArrayBufferLike>();
  for await (const b of loader) {
    costs.push(b.readerCost);
    for (const i of b.indices) seen.add(i);
    buffers.add(b.images.buffer);
    b.release();
    await new Promise((r) => setTimeout(r, 20)); // a "training step" while the next batches decode
  }
  assert.equal(costs.length, 6);
  assert.equal(seen.size, 24, 'each of the 24 samples once');
  assert.ok(
    costs.every((c) => Number.isFinite(c) && c >= 0),
    `reader_cost: ${costs.join(', ')}`,
  );
  assert.ok(buffers.size <= 3, `${buffers.size} batch buffers for 6 batches`);
});

test('batches may differ in image size from one to the next (no crop, batch_size 1): each has its own shape', async () => {
  // the loader sizes each batch buffer from the previous batch; a batch of another size must still come out whole
  const samples = loadFileList({ fileList: path.join(dir, 'good.txt'), dataDir: dir });
  const loader = new DataLoader({
    samples: samples.slice(0, 6),
    transforms: [TRAIN[0], TRAIN[3]],
    batchSize: 1,
    prefetch: 3,
  });
  const batches = await collect(loader);
  assert.deepEqual(
    batches.map((b) => b.shape),
    [0, 1, 2, 3, 4, 5].map((i) => [1, 30, 40 + i, 3]),
  );
  for (const b of batches) {
    const i = b.indices[0];
    assert.equal(b.images.length, 30 * (40 + i) * 3);
    const last = b.images.length - 3; // the last pixel's R: the whole image was copied
    assert.ok(Math.abs((b.images[last] * 0.229 + 0.485) * 255 - i * 10) < 1, `image ${i}`);
    b.release();
  }
});

test('bad samples are logged with path and line, replaced, counted per epoch; strict_data makes them errors', async () => {
  const samples = loadFileList({ fileList: path.join(dir, 'bad.txt'), dataDir: dir });
  const logs: string[] = [];
  const loader = new DataLoader({ samples, transforms: TRAIN, batchSize: 26, log: (m) => logs.push(m) });
  const [batch] = await collect(loader);
  assert.deepEqual(batch.shape, [26, 16, 16, 3]);
  assert.ok(!batch.indices.includes(10) && !batch.indices.includes(11), 'bad samples replaced');
  assert.ok(loader.badSamples >= 2);
  assert.ok(
    logs.some((l) => l.includes('truncated.jpg') && l.includes('line 11')),
    logs.join('\n'),
  );
  assert.ok(
    logs.some((l) => l.includes('missing.png') && l.includes('line 12')),
    logs.join('\n'),
  );
  assert.match(logs[logs.length - 1], /epoch 0: \d+ bad sample\(s\) were replaced/);

  const strict = new DataLoader({ samples, transforms: TRAIN, batchSize: 26, strictData: true, log: () => {} });
  await assert.rejects(collect(strict), /bad sample .*(truncated\.jpg|missing\.png).*strict_data/);
  // the shared DataError, naming the file: the worker prints it as a data error, not as an internal one
  await assert.rejects(collect(strict), (e: unknown) => {
    assert.ok(e instanceof DataError, `${e}`);
    assert.match(e.file ?? '', /(truncated\.jpg|missing\.png)$/);
    return true;
  });
});

test('loaderFromConfig: global batch_size split over workers, shards disjoint in validation', async () => {
  const section = {
    batch_size: 8,
    file_list: path.join(dir, 'good.txt'),
    data_dir: dir,
    shuffle_seed: 0,
    transforms: TRAIN,
  };
  const all = new Set<string>();
  let lengths = new Set<number>();
  for (const rank of [0, 1]) {
    const l = loaderFromConfig(section, { mode: 'valid', rank, worldSize: 2, classesNum: 5 });
    const batches = await collect(l);
    lengths.add(batches.length);
    for (const b of batches) {
      assert.ok(b.shape[0] <= 4);
      for (const i of b.indices) all.add(l.samples[i].path);
    }
  }
  assert.equal(all.size, N);
  assert.equal(lengths.size, 1);
  lengths = new Set();
  const train = loaderFromConfig(section, { mode: 'train', rank: 1, worldSize: 2 });
  const tb = await collect(train);
  assert.equal(tb.length, 3); // ceil(24/2) = 12 samples per worker, batches of 4, drop_last
  assert.throws(
    () => loaderFromConfig({ ...section, batch_size: 1 }, { mode: 'train', worldSize: 2 }),
    /batch_size 1 is global/,
  );
});
