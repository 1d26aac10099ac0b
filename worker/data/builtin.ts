/**
 * The Fashion-MNIST subset that ships with the project (datasets/fashion-mnist-mini/), so the built-in
 * quickstart trains on real images on a machine without the Debian package.
 *
 * Stored compactly: the first 5000 train and 1000 test images of the Debian package's IDX files, pixels
 * quantized to 4 bits (v >> 4, two pixels a byte; decoded as v4 * 17, i.e. 16 grey levels spanning 0..255)
 * and brotli-compressed (node's zlib, no dependency): ~1 MB instead of ~4.7 MB. `ensureBuiltinFashionMnist`
 * writes it out as PNG files plus PaddleClas file lists, so the same file-list dataset code reads it.
 * Regenerate with `node dist/worker/data/builtin.js --make [src]`.
 */
import { DataError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import {
  FASHION_MNIST_LABELS,
  readFashionMnistSplits,
  writeLabelNames,
  writeSplit,
  type GreySplit,
} from './prepare.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** datasets/fashion-mnist-mini, found from the source tree or from dist/ */
export function builtinDir(): string {
  for (const up of ['../../datasets/fashion-mnist-mini', '../../../datasets/fashion-mnist-mini']) {
    const d = path.resolve(HERE, up);
    if (fs.existsSync(path.join(d, 'meta.json'))) return d;
  }
  throw new DataError(`the bundled dataset datasets/fashion-mnist-mini was not found next to ${HERE}`);
}

interface Meta {
  source: string;
  rows: number;
  cols: number;
  train: number;
  val: number;
  bits: number;
  labelNames: string[];
  /** bump when the payload changes so materialized copies are rewritten */
  version: number;
}

const PAYLOAD = 'fashion-mnist-mini.u4.br';

function pack4(pixels: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(pixels.length / 2));
  for (let i = 0; i < pixels.length; i += 2) out[i >> 1] = ((pixels[i] >> 4) << 4) | ((pixels[i + 1] ?? 0) >> 4);
  return out;
}

function unpack4(packed: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = ((i & 1 ? packed[i >> 1] & 15 : packed[i >> 1] >> 4) * 17) & 0xff;
  return out;
}

/** Write the bundled subset from the Debian package (maintainers only; the result is committed). */
export function makeBuiltinSubset(src: string, dir: string, nTrain = 5000, nVal = 1000): void {
  const { train, val } = readFashionMnistSplits(src);
  const per = train.rows * train.cols;
  const labels = Buffer.concat([train.labels.subarray(0, nTrain), val.labels.subarray(0, nVal)]);
  const pixels = Buffer.concat([train.images.subarray(0, nTrain * per), val.images.subarray(0, nVal * per)]);
  const payload = Buffer.concat([labels, pack4(pixels)]);
  const compressed = zlib.brotliCompressSync(payload, {
    params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 },
  });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, PAYLOAD), compressed);
  const meta: Meta = {
    source: 'Debian dataset-fashion-mnist: first images of train-images-idx3-ubyte and t10k-images-idx3-ubyte',
    rows: train.rows,
    cols: train.cols,
    train: nTrain,
    val: nVal,
    bits: 4,
    labelNames: FASHION_MNIST_LABELS,
    version: 2,
  };
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
}

/** Decode the bundled payload into its two splits. */
export function readBuiltinSubset(dir = builtinDir()): { meta: Meta; train: GreySplit; val: GreySplit } {
  const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as Meta;
  const payload = zlib.brotliDecompressSync(fs.readFileSync(path.join(dir, PAYLOAD)));
  const n = meta.train + meta.val;
  const per = meta.rows * meta.cols;
  if (payload.length !== n + Math.ceil((n * per) / 2))
    throw new DataError(`${path.join(dir, PAYLOAD)}: corrupt (${payload.length} bytes)`);
  const labels = payload.subarray(0, n);
  const pixels = unpack4(payload.subarray(n), n * per);
  return {
    meta,
    train: {
      name: 'train',
      labels: labels.subarray(0, meta.train),
      images: pixels.subarray(0, meta.train * per),
      rows: meta.rows,
      cols: meta.cols,
    },
    val: {
      name: 'val',
      labels: labels.subarray(meta.train),
      images: pixels.subarray(meta.train * per),
      rows: meta.rows,
      cols: meta.cols,
    },
  };
}

export interface BuiltinDataset {
  trainList: string;
  valList: string;
  dataDir: string;
  classesNum: 10;
  labelNames: string[];
}

/** Materialize the bundled subset under outDir (once; later calls reuse it). */
export async function ensureBuiltinFashionMnist(outDir: string): Promise<BuiltinDataset> {
  const dir = builtinDir();
  const metaText = fs.readFileSync(path.join(dir, 'meta.json'), 'utf8');
  const meta = JSON.parse(metaText) as Meta;
  const result: BuiltinDataset = {
    trainList: path.join(outDir, 'train_list.txt'),
    valList: path.join(outDir, 'val_list.txt'),
    dataDir: outDir,
    classesNum: 10,
    labelNames: meta.labelNames,
  };
  const current = (dir: string) => {
    const f = path.join(dir, '.builtin-version');
    return fs.existsSync(f) && fs.readFileSync(f, 'utf8') === String(meta.version);
  };
  if (current(outDir)) return result;
  // Every worker of a node may get here at once: each writes a private copy and renames it into place, so no
  // worker ever reads a half-written image; the first rename wins and the others discard theirs.
  fs.mkdirSync(path.dirname(outDir), { recursive: true });
  const tmp = fs.mkdtempSync(`${outDir}.tmp-`);
  const { train, val } = readBuiltinSubset(dir);
  await writeSplit(tmp, train);
  await writeSplit(tmp, val);
  writeLabelNames(tmp, meta.labelNames);
  fs.writeFileSync(path.join(tmp, '.builtin-version'), String(meta.version));
  if (fs.existsSync(outDir) && !current(outDir)) {
    // an older version (or a copy left by an interrupted run before this scheme): move it aside first
    const old = `${tmp}.old`;
    try {
      fs.renameSync(outDir, old);
      fs.rmSync(old, { recursive: true, force: true });
    } catch {
      /* another worker moved it */
    }
  }
  try {
    fs.renameSync(tmp, outDir);
  } catch (e) {
    if (!current(outDir)) throw e;
    fs.rmSync(tmp, { recursive: true, force: true }); // another worker's copy is in place
  }
  return result;
}

if (
  process.argv[1] &&
  path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) &&
  process.argv[2] === '--make'
) {
  const src = process.argv[3] ?? '/usr/share/datasets/fashion-mnist';
  const dir = path.resolve(HERE, '../../../datasets/fashion-mnist-mini');
  makeBuiltinSubset(src, dir);
  console.log(`wrote ${dir}`);
}
