/**
 * PaddleClas / paddle.io DistributedBatchSampler, reproduced index for index.
 *
 * N samples, W workers, per-worker batch B (= global batch_size // W):
 *   num_samples = ceil(N / W), total = num_samples * W; pad by repeating the FIRST indices up to total;
 *   if shuffling, shuffle the padded list with numpy RandomState(epoch) (same on every worker) and, as paddle
 *   does, advance the epoch by one after each pass; worker r takes whole batches round-robin
 *   (indices[i:i+B] for i = r*B, r*B + W*B, ... < total - last, last = total % (B*W)) and then its even share
 *   (last // W) of the remainder; finally its list is cut into batches of B, dropping a short last batch if
 *   drop_last. Every worker therefore gets the same number of samples and batches.
 */
import { NumpyRandomState } from '../../shared/rng.js';

export interface DistributedBatchSamplerOptions {
  datasetSize: number;
  /** per-worker batch size */
  batchSize: number;
  worldSize?: number;
  rank?: number;
  shuffle?: boolean;
  dropLast?: boolean;
}

export class DistributedBatchSampler implements Iterable<number[]> {
  readonly datasetSize: number;
  readonly batchSize: number;
  readonly worldSize: number;
  readonly rank: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly numSamples: number;
  readonly totalSize: number;
  epoch = 0;

  constructor(o: DistributedBatchSamplerOptions) {
    const worldSize = o.worldSize ?? 1;
    const rank = o.rank ?? 0;
    if (!Number.isInteger(o.datasetSize) || o.datasetSize < 1) {
      throw new RangeError(`DistributedBatchSampler: dataset size must be a positive integer, got ${o.datasetSize}`);
    }
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) {
      throw new RangeError(
        `DistributedBatchSampler: per-worker batch size must be a positive integer, got ${o.batchSize}`,
      );
    }
    if (!Number.isInteger(worldSize) || worldSize < 1)
      throw new RangeError(`DistributedBatchSampler: bad world size ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new RangeError(`DistributedBatchSampler: rank ${rank} is outside [0, ${worldSize})`);
    }
    this.datasetSize = o.datasetSize;
    this.batchSize = o.batchSize;
    this.worldSize = worldSize;
    this.rank = rank;
    this.shuffle = o.shuffle ?? false;
    this.dropLast = o.dropLast ?? false;
    this.numSamples = Math.ceil(this.datasetSize / worldSize);
    this.totalSize = this.numSamples * worldSize;
  }

  /** Set the epoch whose shuffle the next pass uses (call before every epoch when resuming). */
  setEpoch(epoch: number): void {
    this.epoch = epoch;
  }

  /** Number of batches this worker yields per epoch. */
  get length(): number {
    return this.dropLast ? Math.floor(this.numSamples / this.batchSize) : Math.ceil(this.numSamples / this.batchSize);
  }

  /** This worker's sample indices for the current epoch (without advancing it). */
  workerIndices(epoch = this.epoch): number[] {
    const n = this.datasetSize;
    const indices: number[] = new Array(this.totalSize);
    // pad with the first indices; when the padding exceeds N (N < W) the list repeats again, where paddle's
    // slicing would fail an assertion
    for (let i = 0; i < this.totalSize; i++) indices[i] = i % n;
    if (this.shuffle) new NumpyRandomState(epoch >>> 0).shuffle(indices);
    if (this.worldSize === 1) return indices;
    const B = this.batchSize;
    const W = this.worldSize;
    const last = this.totalSize % (B * W);
    const lastLocal = last / W; // an integer: totalSize and last are both multiples of W
    const out: number[] = [];
    for (let i = this.rank * B; i < this.totalSize - last; i += B * W) {
      for (let k = i; k < i + B; k++) out.push(indices[k]);
    }
    const tail = this.totalSize - last;
    for (let k = tail + this.rank * lastLocal; k < tail + (this.rank + 1) * lastLocal; k++) out.push(indices[k]);
    return out;
  }

  /** This worker's batches for the current epoch, without advancing it. */
  batches(epoch = this.epoch): number[][] {
    const idx = this.workerIndices(epoch);
    const out: number[][] = [];
    for (let i = 0; i < idx.length; i += this.batchSize) {
      const b = idx.slice(i, i + this.batchSize);
      if (b.length < this.batchSize && this.dropLast) break;
      out.push(b);
    }
    return out;
  }

  /** Iterate one epoch; like paddle, a shuffling sampler moves to the next epoch afterwards. */
  *[Symbol.iterator](): Iterator<number[]> {
    const bs = this.batches();
    if (this.shuffle) this.epoch += 1;
    yield* bs;
  }
}
