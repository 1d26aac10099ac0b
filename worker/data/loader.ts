/**
 * The training data loader: sampler -> transforms -> NHWC float32 batches, prefetched.
 *
 * Decoding runs on libuv's thread pool (sharp), so while the model computes a step the next
 * `prefetch` batches are already being decoded; `readerCost` is only the time the consumer actually waited.
 * Images are processed with bounded concurrency: three per pool thread, so the pool still has decodes queued
 * while the JavaScript thread resamples and normalizes the images that finished (with only two more than the pool,
 * the JavaScript thread was often the only one running on 2 cores; docs/bench_data.md).
 *
 * Bad samples (missing, truncated, corrupt, wrong format) are logged with path and list line, replaced by a
 * random other sample as PaddleClas does, and counted; the count is reported when the epoch ends.
 * With strictData they are an error instead.
 */
import sharp from 'sharp';
import { ConfigError, DataError } from '../../shared/errors.js';
import { Mulberry32, mixSeed } from '../../shared/rng.js';
import type { Sample } from './dataset.js';
import { loadFileList, shuffleLines } from './dataset.js';
import { nativeShm } from '../sys/shm.js';
import { DecodeCache, type ImageCache } from './decode_cache.js';
import { SharedDecodeCache } from './shared_decode_cache.js';
import { DistributedBatchSampler } from './sampler.js';
import { buildTransforms, type PaddleTransformOp, type TransformFn, type TransformOutput } from './transforms.js';

export interface Batch {
  /** NHWC float32 */
  images: Float32Array;
  labels: Int32Array;
  shape: [number, number, number, number];
  /** seconds the consumer waited for this batch */
  readerCost: number;
  /** sample indices of this batch (after replacement of bad samples) */
  indices: number[];
  /**
   * Hand `images` back for reuse once it has been copied (e.g. into a tensor on the wasm or tfjs-node
   * backend; NOT while a cpu-backend tensor still wraps it). Optional, but first-touching a fresh batch buffer
   * of 224x224 images costs more in page faults than decoding them (docs/bench_data.md).
   */
  release: () => void;
}

export interface DataLoaderOptions {
  samples: Sample[];
  /** a config's transforms list (built with channelsLast) or an already-built function */
  transforms: PaddleTransformOp[] | TransformFn;
  /** per-worker batch size */
  batchSize: number;
  worldSize?: number;
  rank?: number;
  shuffle?: boolean;
  dropLast?: boolean;
  /** batches decoded ahead of the consumer (default 2) */
  prefetch?: number;
  /** images in flight at once (default: 3 x the libuv pool size) */
  concurrency?: number;
  /** augmentation seed (combined with epoch and sample index) */
  seed?: number;
  /** a bad sample is an error instead of being replaced */
  strictData?: boolean;
  /** bytes of decoded images kept between epochs (decode_cache.ts); 0 or absent: none */
  decodeCacheBytes?: number;
  /**
   * a file on /dev/shm through which the workers of this host share that cache (shared_decode_cache.ts); every
   * worker must pass the same samples in the same order. A private cache where it cannot be used.
   */
  sharedDecodeCacheFile?: string;
  /** where warnings go (default console.warn) */
  log?: (message: string) => void;
  /** images with more pixels are bad samples (config max_image_pixels) */
  maxImagePixels?: number;
}

/** How many consecutive replacement attempts before concluding the data set is unusable. */
const MAX_REPLACEMENTS = 50;

/** A counting semaphore: bounds the images in flight across all prefetched batches. */
class Slots {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

export class DataLoader implements AsyncIterable<Batch> {
  readonly sampler: DistributedBatchSampler;
  readonly samples: Sample[];
  private readonly transform: TransformFn;
  private readonly prefetch: number;
  private readonly slots: Slots;
  private readonly seed: number;
  private readonly strict: boolean;
  private readonly log: (m: string) => void;
  /** bad samples replaced during the current / last epoch */
  badSamples = 0;
  /** bad samples replaced since the loader was created */
  badSamplesTotal = 0;
  /** decoded images kept between epochs, when enabled */
  readonly decodeCache: ImageCache | undefined;
  /** released batch buffers, by length */
  private readonly spare: Float32Array[] = [];
  /** floats per transformed image, once a batch has shown it */
  private perImage: number | undefined;

  constructor(o: DataLoaderOptions) {
    if (!o.samples.length) throw new DataError('DataLoader: no samples');
    this.samples = o.samples;
    this.log = o.log ?? ((m) => console.warn(m));
    this.decodeCache = o.decodeCacheBytes ? this.makeCache(o.decodeCacheBytes, o.sharedDecodeCacheFile) : undefined;
    this.transform =
      typeof o.transforms === 'function'
        ? o.transforms
        : buildTransforms(o.transforms, {
            seed: o.seed,
            channelsLast: true,
            cache: this.decodeCache,
            maxImagePixels: o.maxImagePixels,
          });
    this.sampler = new DistributedBatchSampler({
      datasetSize: o.samples.length,
      batchSize: o.batchSize,
      worldSize: o.worldSize,
      rank: o.rank,
      shuffle: o.shuffle,
      dropLast: o.dropLast,
    });
    this.prefetch = Math.max(1, o.prefetch ?? 2);
    // libvips' operation cache never hits here (each file is decoded once per epoch, with a new crop) and only
    // costs bookkeeping per image (docs/bench_data.md); process-wide, which is right for a training worker
    sharp.cache(false);
    const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
    this.slots = new Slots(Math.max(1, o.concurrency ?? 3 * pool));
    this.seed = o.seed ?? 0;
    this.strict = o.strictData ?? false;
  }

  private makeCache(bytes: number, sharedFile: string | undefined): ImageCache {
    const native = nativeShm();
    if (sharedFile && native) {
      try {
        return new SharedDecodeCache(sharedFile, this.samples.length, bytes, native);
      } catch (e) {
        this.log(
          `WARNING: cannot share the decode cache through ${sharedFile} (${(e as Error).message}); each worker keeps its own`,
        );
      }
    }
    return new DecodeCache(bytes);
  }

  /** batches per epoch for this worker */
  get length(): number {
    return this.sampler.length;
  }

  setEpoch(epoch: number): void {
    this.sampler.setEpoch(epoch);
  }

  private async loadOne(
    index: number,
    epoch: number,
    position: number,
    dest?: Float32Array,
  ): Promise<{ out: TransformOutput; index: number }> {
    let idx = index;
    const rng = new Mulberry32(mixSeed(this.seed, epoch, position, 0x5eed));
    for (let attempt = 0; ; attempt++) {
      const s = this.samples[idx];
      await this.slots.acquire();
      try {
        const out = await this.transform({ path: s.path, index: idx }, mixSeed(epoch, position, attempt), dest);
        return { out, index: idx };
      } catch (e) {
        const where = s.line ? `line ${s.line}` : 'folder tree';
        const msg = `bad sample ${s.path} (${where}): ${(e as Error).message}`;
        if (this.strict) throw new DataError(`${msg} (strict_data is set)`, s.path, { cause: e });
        this.badSamples++;
        this.badSamplesTotal++;
        if (attempt + 1 >= MAX_REPLACEMENTS) {
          throw new DataError(
            `${MAX_REPLACEMENTS} bad samples in a row (last: ${msg}); is the data set readable?`,
            s.path,
            { cause: e },
          );
        }
        idx = rng.randint(0, this.samples.length - 1);
        this.log(`WARNING: ${msg}; replaced by sample ${idx}`);
      } finally {
        this.slots.release();
      }
    }
  }

  private takeBuffer(length: number): Float32Array {
    const i = this.spare.findIndex((b) => b.length === length);
    return i >= 0 ? this.spare.splice(i, 1)[0] : new Float32Array(length);
  }

  private async loadBatch(indices: number[], epoch: number, firstPosition: number): Promise<Omit<Batch, 'readerCost'>> {
    // Images are written straight into the batch buffer, sized by the floats per image. The first batch learns
    // that from its first image, loaded alone; later ones take the size the previous batch had and start every
    // image at once (loading each batch's first image alone left the cores idle at every batch boundary,
    // docs/bench_data.md). The batch's shape is still its first image's: a batch of another size than its
    // predecessor is copied into a buffer of its own size, as images that cannot be written in place always were.
    const shapeOf = (o: TransformOutput) => (o.layout === 'HWC' ? o.shape : [o.shape[1], o.shape[2], o.shape[0]]);
    let head: { out: TransformOutput; index: number } | undefined;
    if (this.perImage === undefined) {
      head = await this.loadOne(indices[0], epoch, firstPosition);
      this.perImage = shapeOf(head.out).reduce((x, y) => x * y, 1);
    }
    const slot = this.perImage;
    const from = head ? 1 : 0;
    const written = this.takeBuffer(slot * indices.length);
    const rest = await Promise.all(
      indices
        .slice(from)
        .map((idx, k) =>
          this.loadOne(
            idx,
            epoch,
            firstPosition + from + k,
            written.subarray((from + k) * slot, (from + k + 1) * slot),
          ),
        ),
    );
    const loaded = head ? [head, ...rest] : rest;
    const [h, w, c] = shapeOf(loaded[0].out);
    const per = h * w * c;
    this.perImage = per;
    const images = per === slot ? written : this.takeBuffer(per * indices.length);
    const labels = new Int32Array(loaded.length);
    loaded.forEach(({ out, index }, k) => {
      if (out.data.length !== per) {
        throw new DataError(
          `${this.samples[index].path}: transformed to ${out.shape.join('x')}, but the batch is ${h}x${w}x${c}; ` +
            'add a crop/resize to the transforms',
          this.samples[index].path,
        );
      }
      if (out.data.buffer === images.buffer && out.data.byteOffset === images.byteOffset + k * per * 4) {
        // already in place
      } else if (out.layout === 'HWC') images.set(out.data, k * per);
      else {
        const plane = h * w;
        const base = k * per;
        for (let p = 0; p < plane; p++)
          for (let ch = 0; ch < c; ch++) images[base + p * c + ch] = out.data[ch * plane + p];
      }
      labels[k] = this.samples[index].label;
    });
    if (images !== written && this.spare.length < this.prefetch + 2) this.spare.push(written);
    let released = false;
    const release = () => {
      if (!released && this.spare.length < this.prefetch + 2) this.spare.push(images);
      released = true;
    };
    return { images, labels, shape: [loaded.length, h, w, c], indices: loaded.map((l) => l.index), release };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    const epoch = this.sampler.epoch;
    const batches = [...this.sampler]; // advances a shuffling sampler's epoch, like paddle
    this.badSamples = 0;
    const positions: number[] = [];
    let start = 0;
    for (const b of batches) {
      positions.push(start);
      start += b.length;
    }
    const pending: Array<Promise<Omit<Batch, 'readerCost'>>> = [];
    let next = 0;
    const fill = () => {
      while (next < batches.length && pending.length < this.prefetch) {
        const p = this.loadBatch(batches[next], epoch, positions[next]);
        p.catch(() => {}); // surfaced when the consumer reaches it; never an unhandled rejection
        pending.push(p);
        next++;
      }
    };
    fill();
    while (pending.length) {
      const t0 = performance.now();
      const batch = await pending.shift()!;
      const readerCost = (performance.now() - t0) / 1000;
      fill();
      yield { ...batch, readerCost };
    }
    if (this.badSamples > 0) {
      this.log(
        `WARNING: epoch ${epoch}: ${this.badSamples} bad sample(s) were replaced (set strict_data: true to fail instead)`,
      );
    }
  }
}

/** The TRAIN / VALID section of a PaddleClas config, as far as the loader needs it. */
export interface DataSectionConfig {
  batch_size: number;
  file_list: string;
  data_dir: string;
  delimiter?: string;
  shuffle_seed?: number;
  transforms: PaddleTransformOp[];
  /** MiB of decoded images kept between epochs (0: none) */
  decode_cache_mb?: number;
}

/**
 * Build a worker's loader from a config section: batch_size is global (each of W workers takes
 * batch_size // W); train shuffles the list once with shuffle_seed, shuffles per epoch and drops the last
 * short batch; valid does neither.
 */
export function loaderFromConfig(
  section: DataSectionConfig,
  o: {
    mode: 'train' | 'valid';
    classesNum?: number;
    rank?: number;
    worldSize?: number;
    strictData?: boolean;
    seed?: number;
    prefetch?: number;
    log?: (m: string) => void;
    sharedDecodeCacheFile?: string;
    decodeCache?: boolean;
    maxImagePixels?: number;
  },
): DataLoader {
  const worldSize = o.worldSize ?? 1;
  const perWorker = Math.floor(section.batch_size / worldSize);
  if (!Number.isInteger(section.batch_size) || perWorker < 1) {
    throw new ConfigError(
      `batch_size ${section.batch_size} is global and must be at least the world size ${worldSize}`,
      undefined,
      'batch_size',
    );
  }
  let samples = loadFileList({
    fileList: section.file_list,
    dataDir: section.data_dir,
    delimiter: section.delimiter,
    classesNum: o.classesNum,
  });
  const train = o.mode === 'train';
  if (train && section.shuffle_seed !== undefined && section.shuffle_seed !== null)
    samples = shuffleLines(samples, section.shuffle_seed);
  return new DataLoader({
    samples,
    transforms: section.transforms,
    batchSize: perWorker,
    worldSize,
    rank: o.rank,
    shuffle: train,
    dropLast: train,
    seed: o.seed ?? section.shuffle_seed ?? 0,
    strictData: o.strictData,
    decodeCacheBytes: o.decodeCache === false ? 0 : (section.decode_cache_mb ?? 0) * 1024 * 1024,
    sharedDecodeCacheFile: o.sharedDecodeCacheFile,
    prefetch: o.prefetch,
    log: o.log,
    maxImagePixels: o.maxImagePixels,
  });
}
