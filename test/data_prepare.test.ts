import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { prepareDataset } from '../worker/data/prepare.js';
import { ensureBuiltinFashionMnist, readBuiltinSubset } from '../worker/data/builtin.js';
import { loadFileList } from '../worker/data/dataset.js';
import { readIdx } from '../worker/data/idx.js';

let dir = '';

function idx(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.set([0, 0, 8, dims.length]);
  dims.forEach((d, i) => {
    head.writeUInt32BE(d, 4 + 4 * i);
  });
  return zlib.gzipSync(Buffer.concat([head, data]));
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'data-prepare-'));
  // a small Fashion-MNIST-format source: same file names and IDX layout as the Debian package
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  for (const [prefix, n] of [
    ['train', 12],
    ['t10k', 5],
  ] as const) {
    const pixels = new Uint8Array(n * 28 * 28).map((_, i) => (i * 7 + n) % 256);
    const labels = new Uint8Array(n).map((_, i) => (i * 3) % 10);
    fs.writeFileSync(path.join(src, `${prefix}-images-idx3-ubyte.gz`), idx([n, 28, 28], pixels));
    fs.writeFileSync(path.join(src, `${prefix}-labels-idx1-ubyte.gz`), idx([n], labels));
  }
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('prepare fashion-mnist writes PNGs, PaddleClas file lists and label names that round-trip', async () => {
  const out = path.join(dir, 'out');
  await prepareDataset('fashion-mnist', { src: path.join(dir, 'src'), out });
  const train = loadFileList({ fileList: path.join(out, 'train_list.txt'), dataDir: out, classesNum: 10 });
  const val = loadFileList({ fileList: path.join(out, 'val_list.txt'), dataDir: out, classesNum: 10 });
  assert.equal(train.length, 12);
  assert.equal(val.length, 5);
  assert.equal(path.relative(out, train[3].path), 'train/00003.png');
  assert.equal(train[3].label, 9);
  const srcImages = readIdx(path.join(dir, 'src', 'train-images-idx3-ubyte.gz'));
  const meta = await sharp(train[3].path).metadata();
  assert.deepEqual([meta.width, meta.height, meta.channels], [28, 28, 1]);
  const data = await sharp(train[3].path).extractChannel(0).raw().toBuffer();
  assert.deepEqual(new Uint8Array(data), srcImages.data.subarray(3 * 784, 4 * 784));
  assert.match(
    fs.readFileSync(path.join(out, 'label_names.txt'), 'utf8'),
    /^0 T-shirt\/top\n1 Trouser\n[\s\S]*9 Ankle boot\n$/,
  );
});

test('prepare rejects unknown datasets and missing sources by name', async () => {
  await assert.rejects(
    prepareDataset('imagenet', { src: dir, out: dir }),
    /unknown dataset "imagenet"; supported: fashion-mnist/,
  );
  await assert.rejects(
    prepareDataset('fashion-mnist', { src: path.join(dir, 'nowhere'), out: dir }),
    /nowhere not found/,
  );
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  await assert.rejects(
    prepareDataset('fashion-mnist', { src: empty, out: dir }),
    /train-images-idx3-ubyte\[\.gz\] not found/,
  );
});

test('the bundled subset materializes as 5000 + 1000 real Fashion-MNIST PNGs, once, even with several workers at a time', async () => {
  const out = path.join(dir, 'builtin');
  // two workers of a node materialize it at the same time: both must see a whole copy
  const [ds, other] = await Promise.all([ensureBuiltinFashionMnist(out), ensureBuiltinFashionMnist(out)]);
  assert.deepEqual(other, ds);
  assert.deepEqual(
    fs.readdirSync(dir).filter((n) => n.startsWith('builtin.')),
    [],
    'no temporary copy left behind',
  );
  assert.equal(ds.classesNum, 10);
  assert.equal(ds.labelNames[9], 'Ankle boot');
  const train = loadFileList({ fileList: ds.trainList, dataDir: ds.dataDir, classesNum: 10 });
  const val = loadFileList({ fileList: ds.valList, dataDir: ds.dataDir, classesNum: 10 });
  assert.equal(train.length, 5000);
  assert.equal(val.length, 1000);
  const counts = new Array(10).fill(0);
  for (const s of train) counts[s.label]++;
  assert.ok(
    counts.every((c) => c > 400),
    `every class present: ${counts}`,
  );
  const meta = await sharp(val[0].path).metadata();
  assert.deepEqual([meta.width, meta.height, meta.channels], [28, 28, 1]);
  const data = await sharp(val[0].path).extractChannel(0).raw().toBuffer();
  assert.ok(new Set(data).size > 4, 'a real picture, not a flat image');
  assert.ok(
    [...data].every((v) => v % 17 === 0),
    '16 grey levels',
  );
  // the first test image of Fashion-MNIST is an ankle boot (label 9)
  assert.equal(val[0].label, 9);
  const stamp = fs.statSync(path.join(out, 'train', '00000.png')).mtimeMs;
  await ensureBuiltinFashionMnist(out);
  assert.equal(fs.statSync(path.join(out, 'train', '00000.png')).mtimeMs, stamp, 'not rewritten');
  assert.equal(readBuiltinSubset().meta.train, 5000);
});
