/**
 * Decode + augment throughput of the train transforms (DecodeImage, RandCropImage 224, RandFlipImage,
 * NormalizeImage, ToCHWImage as the HarDNet config lists them) on 500x375 JPEGs, through the DataLoader with
 * its default settings. Prints images/s per repeat and the median; `--json` prints one JSON object.
 *
 *   npm run bench:data [-- --json] [-- --images 64 --batches 20 --repeats 5 --batch 64]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { DataLoader } from '../worker/data/loader.js';
import type { Sample } from '../worker/data/dataset.js';
import type { PaddleTransformOp } from '../worker/data/transforms.js';

const TRAIN_TRANSFORMS: PaddleTransformOp[] = [
  { DecodeImage: { to_rgb: true, to_np: false, channel_first: false } },
  { RandCropImage: { size: 224 } },
  { RandFlipImage: { flip_code: 1 } },
  { NormalizeImage: { scale: '1./255.', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: '' } },
  { ToCHWImage: null },
];

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** Distinct photo-like 500x375 JPEGs (smooth noise + edges), like ImageNet's typical file size. */
async function makeImages(dir: string, n: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const file = path.join(dir, `img${i}.jpg`);
    const noise = await sharp({ create: { width: 500, height: 375, channels: 3, background: '#000', noise: { type: 'gaussian' as const, mean: 110 + i, sigma: 60 } } })
      .blur(1.5)
      .jpeg({ quality: 90 })
      .toBuffer();
    fs.writeFileSync(file, noise);
    samples.push({ path: file, label: i % 10, line: i + 1 });
  }
  return samples;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const nImages = arg('images', 64);
  const batches = arg('batches', 16);
  const repeats = arg('repeats', 5);
  const batch = arg('batch', 64);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-data-'));
  try {
    const samples = await makeImages(dir, nImages);
    const jpegBytes = samples.reduce((s, x) => s + fs.statSync(x.path).size, 0) / samples.length;
    const rates: number[] = [];
    const cpuMsPerImage: number[] = [];
    // index list long enough for `batches` batches; the loader has its default prefetch/concurrency. One loader
    // for all repeats (each repeat is an epoch), as in training, so its batch buffers are warm after the first.
    const many: Sample[] = Array.from({ length: batches * batch }, (_, i) => samples[i % samples.length]);
    const loader: DataLoader = new DataLoader({ samples: many, transforms: TRAIN_TRANSFORMS, batchSize: batch, shuffle: true, dropLast: true, seed: 1 });
    for (let r = 0; r < repeats + 1; r++) {
      loader.setEpoch(r);
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      let n = 0;
      for await (const b of loader) {
        n += b.shape[0];
        b.release(); // what a trainer does once the batch is uploaded to the backend
      }
      const rate = n / ((performance.now() - t0) / 1000);
      const cpu = process.cpuUsage(c0);
      const cpuMs = (cpu.user + cpu.system) / 1000 / n;
      if (r > 0) {
        // the first pass warms sharp/libvips up
        rates.push(rate);
        cpuMsPerImage.push(cpuMs);
      }
      if (!json && r > 0) console.log(`repeat ${r}: ${rate.toFixed(1)} images/s, ${cpuMs.toFixed(2)} CPU-ms/image`);
    }
    const result = {
      benchmark: 'data',
      transforms: 'DecodeImage, RandCropImage(224), RandFlipImage, NormalizeImage, ToCHWImage (NHWC out)',
      image: '500x375 JPEG',
      mean_jpeg_bytes: Math.round(jpegBytes),
      batch_size: batch,
      images_per_repeat: batches * batch,
      repeats,
      cpus: os.availableParallelism(),
      uv_threadpool_size: Number(process.env.UV_THREADPOOL_SIZE) || 4,
      images_per_s_median: Number(median(rates).toFixed(1)),
      images_per_s: rates.map((x) => Number(x.toFixed(1))),
      // CPU time of this process (all threads) per image: what the machine can do when the other engineers'
      // jobs are not competing for its cores, = cpus * 1000 / cpu_ms_per_image
      cpu_ms_per_image_median: Number(median(cpuMsPerImage).toFixed(2)),
      images_per_s_cpu_bound: Number(((os.availableParallelism() * 1000) / median(cpuMsPerImage)).toFixed(1)),
      target_images_per_s: 300,
    };
    if (json) console.log(JSON.stringify(result));
    else {
      console.log(`median ${result.images_per_s_median} images/s wall (target >= 300) on ${result.cpus} CPUs, load average ${os.loadavg()[0].toFixed(1)}`);
      console.log(`median ${result.cpu_ms_per_image_median} CPU-ms/image -> ${result.images_per_s_cpu_bound} images/s when the CPUs are all ours`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
