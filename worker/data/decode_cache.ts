/**
 * Decoded images kept in memory between epochs, for data sets whose images shrink to a fixed small size.
 *
 * Why: on small images (Fashion-MNIST, CIFAR) a sharp call costs about the same whatever the size (libvips pipeline
 * set-up), several times the pixel work, and on two cores that competes with the model for CPU: a small model's
 * step waited for decoding for a large part of its compute time (docs/bench_data.md). Only the
 * deterministic head of a transform list (DecodeImage, then ResizeImage / CropImage, which draw no random
 * numbers) is cached, as uint8 RGB after that head; the random ops after it (flips, crops, normalization) run
 * on every call. So a cached sample yields exactly the pixels an uncached one does (a test checks this).
 *
 * The budget bounds memory: once full, further images are decoded every time (ImageNet-size data sets simply
 * get no benefit; Fashion-MNIST at 32x32 RGB is 60,000 x 3 KB = 184 MB).
 */
import type { RawImage } from './image.js';

/** What the transforms need of a cache: `index` is the sample's position in the file list, when known. */
export interface ImageCache {
  get(key: string, index?: number): RawImage | undefined;
  put(key: string, img: RawImage, index?: number): void;
  readonly hits: number;
  readonly misses: number;
  /** a shared cache's file name is removed once every worker has it open */
  unlinkName?(): void;
  /** for the log: what it holds and how often it was used */
  describe(): string;
}

/** One worker's cache, keyed by file path. */
export class DecodeCache implements ImageCache {
  private readonly images = new Map<string, RawImage>();
  bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly budgetBytes: number) {}

  /** A private copy of the cached image (later transforms such as RandFlipImage work in place). */
  get(key: string): RawImage | undefined {
    const img = this.images.get(key);
    if (img === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return { kind: 'raw', data: img.data.slice(), width: img.width, height: img.height };
  }

  /** Keeps a copy of `img` while the budget allows. */
  put(key: string, img: RawImage): void {
    if (this.images.has(key) || this.bytes + img.data.length > this.budgetBytes) return;
    this.images.set(key, { kind: 'raw', data: img.data.slice(), width: img.width, height: img.height });
    this.bytes += img.data.length;
  }

  get size(): number {
    return this.images.size;
  }

  describe(): string {
    const kept = `${this.size} images (${(this.bytes / 1e6).toFixed(1)} MB) kept by this worker`;
    return `${kept}; since the start: hits ${this.hits}, misses ${this.misses}`;
  }
}
