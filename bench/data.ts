/**
 * Decode + augment throughput of the train transforms (DecodeImage, RandCropImage 224, RandFlipImage,
 * NormalizeImage, ToCHWImage as the HarDNet config lists them) through the DataLoader, on N copies of one JPEG,
 * as ../shared/tools/torch_data_bench.py feeds torchvision (default: the 500x375 photo in test/fixtures, 1024
 * copies, batch 64, 3 repeats). Prints images/s per repeat and the median; `--json` prints one JSON object.
 *
 *   npm run bench:data [-- --image F.jpg --n 1024 --repeats 3 --batch 64 --json]
 *   npm run bench:data -- --in-flight 2,4,8   one run per value: that many images in flight (like as many
 *                                             DataLoader workers) on as many libuv threads (UV_THREADPOOL_SIZE,
 *                                             unless set)
 *   npm run bench:data -- --no-fused          resize with sharp instead of the fused resample pass
 *   npm run bench:data -- --no-turbo          decode every JPEG with sharp instead of libjpeg-turbo's cropped decode
 *   npm run bench:data -- --breakdown         serial CPU-ms per image of each stage (read, decode+crop, resize...)
 *
 * With several --in-flight values each runs in its own process (libuv's pool size is fixed at start-up).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { DataLoader } from '../worker/data/loader.js';
import type { Sample } from '../worker/data/dataset.js';
import { buildTransforms, randCropBox, sampleRng, type PaddleTransformOp } from '../worker/data/transforms.js';
import { resampleNormalize } from '../worker/data/resample.js';
import { decodeJpegBox, jpegTurboStatus } from '../worker/data/jpeg_turbo.js';

const TRAIN_TRANSFORMS: PaddleTransformOp[] = [
  { DecodeImage: { to_rgb: true, to_np: false, channel_first: false } },
  { RandCropImage: { size: 224 } },
  { RandFlipImage: { flip_code: 1 } },
  { NormalizeImage: { scale: '1./255.', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: '' } },
  { ToCHWImage: null },
];

const here = path.dirname(fileURLToPath(import.meta.url));
const DEFAULT_IMAGE = path.resolve(here, '../../test/fixtures/images/photo_500x375.jpg');

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

/**
 * CPU time of this process's main thread (the one JavaScript, the wasm resample and sharp's option parsing run on),
 * in ms, from /proc (Linux; NaN elsewhere). Its share per image bounds one process's rate however many cores
 * libuv's threads get: images/s <= 1000 / main-thread ms per image.
 */
function mainThreadCpuMs(): number {
  try {
    const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime in clock ticks of 10 ms (USER_HZ 100)
  } catch {
    return NaN;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Serial CPU time per image of each stage, on random boxes drawn as RandCropImage draws them. */
async function breakdown(image: string, n: number): Promise<Record<string, number>> {
  sharp.cache(false);
  const input = fs.readFileSync(image);
  const { width: W = 0, height: H = 0 } = await sharp(input).metadata();
  const boxes = Array.from({ length: n }, (_, i) =>
    randCropBox(W, H, [0.08, 1], [3 / 4, 4 / 3], sampleRng(1, i, image)),
  );
  const luts = new Float32Array(768).map((_, i) => ((i & 255) / 255 - 0.45) / 0.225);
  const dest = new Float32Array(224 * 224 * 3);
  const crops = await Promise.all(boxes.slice(0, 64).map((b) => sharp(input).extract(b).raw().toBuffer()));
  const fn = buildTransforms(TRAIN_TRANSFORMS, { channelsLast: true, seed: 1 });
  const plain = buildTransforms(TRAIN_TRANSFORMS, {
    channelsLast: true,
    seed: 1,
    fusedResample: false,
    jpegTurbo: false,
  });
  const sharpFused = buildTransforms(TRAIN_TRANSFORMS, { channelsLast: true, seed: 1, jpegTurbo: false });
  const stages: Record<string, (i: number) => Promise<unknown> | unknown> = {
    'sharp pipeline, 8x8 created image (fixed cost)': () =>
      sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } })
        .raw()
        .toBuffer(),
    'read file (fs.promises.readFile)': () => fs.promises.readFile(image),
    'decode whole image': () => sharp(input).raw().toBuffer(),
    "decode + crop (the fused path's sharp part)": (i) =>
      sharp(input, { autoOrient: true, failOn: 'truncated' })
        .extract(boxes[i])
        .removeAlpha()
        .toColourspace('srgb')
        .raw()
        .toBuffer(),
    'decode + crop (libjpeg-turbo, the default)': (i) => decodeJpegBox(input, W, H, boxes[i], 50_000_000),
    'decode + crop + resize 224 (sharp)': (i) =>
      sharp(input, { autoOrient: true, failOn: 'truncated' })
        .extract(boxes[i])
        .resize(224, 224, { fit: 'fill', kernel: 'linear' })
        .removeAlpha()
        .toColourspace('srgb')
        .raw()
        .toBuffer(),
    'resample + flip + normalise of a crop (wasm)': (i) => {
      const b = boxes[i % 64];
      resampleNormalize(crops[i % 64], b.width, b.height, 224, 224, i & 1 ? 1 : undefined, luts, dest);
    },
    'whole transform, libjpeg-turbo + fused (default)': (i) => fn({ path: image, buffer: input }, i, dest),
    'whole transform, sharp decode + fused (--no-turbo)': (i) => sharpFused({ path: image, buffer: input }, i, dest),
    'whole transform, sharp decode + sharp resize (--no-turbo --no-fused)': (i) =>
      plain({ path: image, buffer: input }, i, dest),
  };
  // the stages interleaved in rounds (the machine's speed drifts), median per stage
  const rounds = 5;
  const per = Math.max(1, Math.floor(n / rounds));
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(stages).map((k) => [k, []]));
  for (const f of Object.values(stages)) for (let i = 0; i < 20; i++) await f(i);
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of Object.entries(stages)) {
      const c0 = process.cpuUsage();
      for (let i = r * per; i < (r + 1) * per; i++) await f(i);
      const c = process.cpuUsage(c0);
      times[name].push((c.user + c.system) / 1000 / per);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, Number(median(v).toFixed(3))]));
}

async function run(): Promise<void> {
  const json = process.argv.includes('--json');
  const image = path.resolve(arg('image', DEFAULT_IMAGE));
  const nImages = Number(arg('n', '1024'));
  const repeats = Number(arg('repeats', '3'));
  const batch = Number(arg('batch', '64'));
  const inFlight = arg('in-flight', '');
  const fused = !process.argv.includes('--no-fused');
  const turbo = !process.argv.includes('--no-turbo');
  const turboStatus = jpegTurboStatus();
  const decoder = !turbo ? 'sharp' : turboStatus.available ? 'libjpeg-turbo' : `sharp (${turboStatus.reason})`;
  if (process.argv.includes('--breakdown')) {
    const b = await breakdown(image, Number(arg('n', '300')));
    if (json) console.log(JSON.stringify({ benchmark: 'data-breakdown', image, cpu_ms_per_image: b }));
    else for (const [k, v] of Object.entries(b)) console.log(`${v.toFixed(3).padStart(7)} CPU-ms  ${k}`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-data-'));
  try {
    // N copies of one file, like the peer: every image is read and decoded, none is cached
    const samples: Sample[] = [];
    for (let i = 0; i < nImages; i++) {
      const file = path.join(dir, `${i}.jpg`);
      fs.copyFileSync(image, file);
      samples.push({ path: file, label: i % 10, line: i + 1 });
    }
    const rates: number[] = [];
    const cpuMsPerImage: number[] = [];
    const mainMsPerImage: number[] = [];
    const loader = new DataLoader({
      samples,
      transforms: buildTransforms(TRAIN_TRANSFORMS, {
        seed: 1,
        channelsLast: true,
        fusedResample: fused,
        jpegTurbo: turbo,
      }),
      batchSize: batch,
      shuffle: true,
      dropLast: false,
      seed: 1,
      concurrency: inFlight ? Number(inFlight) : undefined,
    });
    // one warm-up epoch (sharp/libvips start-up, the loader's batch buffers), then `repeats` timed epochs
    for (let r = 0; r <= repeats; r++) {
      loader.setEpoch(r);
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const m0 = mainThreadCpuMs();
      let n = 0;
      for await (const b of loader) {
        n += b.shape[0];
        b.release(); // what a trainer does once the batch is uploaded to the backend
      }
      const rate = n / ((performance.now() - t0) / 1000);
      const cpu = process.cpuUsage(c0);
      const cpuMs = (cpu.user + cpu.system) / 1000 / n;
      const mainMs = (mainThreadCpuMs() - m0) / n;
      if (r === 0) continue;
      rates.push(rate);
      cpuMsPerImage.push(cpuMs);
      mainMsPerImage.push(mainMs);
      if (!json)
        console.log(
          `repeat ${r}: ${rate.toFixed(1)} images/s, ${cpuMs.toFixed(2)} CPU-ms/image (main thread ${mainMs.toFixed(2)})`,
        );
    }
    const { size } = fs.statSync(image);
    const result = {
      benchmark: 'data',
      transforms: 'DecodeImage, RandCropImage(224), RandFlipImage, NormalizeImage, ToCHWImage (NHWC out)',
      image: path.basename(image),
      jpeg_bytes: size,
      images_per_repeat: nImages,
      batch_size: batch,
      repeats,
      fused_resample: fused,
      decoder,
      in_flight: inFlight ? Number(inFlight) : 'loader default',
      cpus: os.availableParallelism(),
      uv_threadpool_size: Number(process.env.UV_THREADPOOL_SIZE) || 4,
      images_per_s_median: Number(median(rates).toFixed(1)),
      images_per_s: rates.map((x) => Number(x.toFixed(1))),
      // CPU time of this process (all threads) per image
      cpu_ms_per_image_median: Number(median(cpuMsPerImage).toFixed(2)),
      main_thread_cpu_ms_per_image_median: Number(median(mainMsPerImage).toFixed(2)),
      // CPU-seconds per second of the median repeat: below the core count on a quiet machine, cores were idle
      cores_busy: Number(((median(rates) * median(cpuMsPerImage)) / 1000).toFixed(2)),
      load_average: Number(os.loadavg()[0].toFixed(1)),
    };
    if (json) console.log(JSON.stringify(result));
    else {
      console.log(
        `median ${result.images_per_s_median} images/s (${result.cpu_ms_per_image_median} CPU-ms/image, main thread ` +
          `${result.main_thread_cpu_ms_per_image_median}; ${result.cores_busy} cores busy; ${inFlight || 'default'} in flight, ` +
          `UV_THREADPOOL_SIZE ${result.uv_threadpool_size}, ${decoder} decode, ${fused ? 'fused resample' : 'sharp resize'}) on ${result.cpus} CPUs, load average ${result.load_average}`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const flights = arg('in-flight', '')
  .split(',')
  .filter((s) => s !== '');
if (flights.length > 1 || (flights.length === 1 && process.env.UV_THREADPOOL_SIZE === undefined)) {
  // one process per value: libuv's pool size is read once, when the pool first starts (already done by the time
  // this line runs), so each value runs in a child started with UV_THREADPOOL_SIZE = that many images in flight
  for (const f of flights) {
    const args = process.argv.slice(2);
    args[args.indexOf('--in-flight') + 1] = f;
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], {
      stdio: 'inherit',
      env: { ...process.env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? f },
    });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
} else {
  await run();
}
