/**
 * `launch prepare <dataset>`: write a dataset as PNG files plus PaddleClas file lists, so the same file-list
 * code path trains on it. Supported: fashion-mnist (from the Debian package's IDX files).
 *
 * Output (out/): train/NNNNN.png, val/NNNNN.png, train_list.txt, val_list.txt (`train/00000.png 9`),
 * label_names.txt (`0 T-shirt/top`, PaddleClas's class-id map format).
 */
import { DataError, UsageError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { readIdx } from './idx.js';

export const FASHION_MNIST_LABELS = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export const SUPPORTED_DATASETS = ['fashion-mnist'];

export interface GreySplit {
  name: 'train' | 'val';
  /** count x rows x cols uint8 */
  images: Uint8Array;
  labels: Uint8Array;
  rows: number;
  cols: number;
}

/** Write one split as grey PNGs and its file list; returns the list path. */
export async function writeSplit(out: string, split: GreySplit, concurrency = 8): Promise<string> {
  const dir = path.join(out, split.name);
  fs.mkdirSync(dir, { recursive: true });
  const n = split.labels.length;
  const per = split.rows * split.cols;
  const width = Math.max(5, String(n - 1).length);
  const names = Array.from({ length: n }, (_, i) => `${split.name}/${String(i).padStart(width, '0')}.png`);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const pixels = split.images.subarray(i * per, (i + 1) * per);
      await sharp(pixels, { raw: { width: split.cols, height: split.rows, channels: 1 } })
        .toColourspace('b-w') // one grey channel: 3x smaller files than sharp's default RGB
        .png({ compressionLevel: 6 })
        .toFile(path.join(out, names[i]));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const list = path.join(out, `${split.name}_list.txt`);
  fs.writeFileSync(list, names.map((f, i) => `${f} ${split.labels[i]}\n`).join(''));
  return list;
}

export function writeLabelNames(out: string, names: string[]): string {
  const file = path.join(out, 'label_names.txt');
  fs.writeFileSync(file, names.map((n, i) => `${i} ${n}\n`).join(''));
  return file;
}

function readFashionMnist(src: string, prefix: 'train' | 't10k', name: 'train' | 'val'): GreySplit {
  const find = (base: string) => {
    for (const f of [`${base}.gz`, base]) if (fs.existsSync(path.join(src, f))) return path.join(src, f);
    throw new DataError(
      `fashion-mnist: ${path.join(src, base)}[.gz] not found (install the Debian package dataset-fashion-mnist or pass --src)`,
    );
  };
  const images = readIdx(find(`${prefix}-images-idx3-ubyte`));
  const labels = readIdx(find(`${prefix}-labels-idx1-ubyte`));
  if (images.dims.length !== 3 || labels.dims.length !== 1 || images.dims[0] !== labels.dims[0]) {
    throw new DataError(
      `fashion-mnist ${prefix}: images ${images.dims.join('x')} do not match labels ${labels.dims.join('x')}`,
    );
  }
  const bad = labels.data.findIndex((l) => l > 9);
  if (bad >= 0)
    throw new DataError(`fashion-mnist ${prefix}: label ${labels.data[bad]} at index ${bad} is outside [0, 10)`);
  return { name, images: images.data, labels: labels.data, rows: images.dims[1], cols: images.dims[2] };
}

export function readFashionMnistSplits(src: string): { train: GreySplit; val: GreySplit } {
  if (!fs.existsSync(src)) {
    throw new UsageError(
      `fashion-mnist: source directory ${src} not found (install the Debian package dataset-fashion-mnist or pass --src)`,
    );
  }
  return { train: readFashionMnist(src, 'train', 'train'), val: readFashionMnist(src, 't10k', 'val') };
}

export async function prepareDataset(name: string, opts: { src: string; out: string }): Promise<void> {
  if (name !== 'fashion-mnist') {
    throw new UsageError(
      `prepare: unknown dataset ${JSON.stringify(name)}; supported: ${SUPPORTED_DATASETS.join(', ')}`,
    );
  }
  const { train, val } = readFashionMnistSplits(opts.src);
  fs.mkdirSync(opts.out, { recursive: true });
  const trainList = await writeSplit(opts.out, train);
  const valList = await writeSplit(opts.out, val);
  const names = writeLabelNames(opts.out, FASHION_MNIST_LABELS);
  console.log(
    `fashion-mnist: ${train.labels.length} train + ${val.labels.length} val PNGs in ${opts.out}\n` +
      `  TRAIN.file_list: ${trainList}\n  VALID.file_list: ${valList}\n  data_dir: ${opts.out}\n  labels: ${names}`,
  );
}
