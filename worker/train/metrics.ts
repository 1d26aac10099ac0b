/** Accuracy and timing bookkeeping for the training and validation loops. */
import * as tf from '@tensorflow/tfjs-core';

/** Correct top-1 and top-k counts of a batch of logits against integer labels. */
export async function topkCorrect(
  logits: tf.Tensor2D,
  labels: Int32Array,
  k: number,
): Promise<{ top1: number; topk: number }> {
  const kk = Math.min(k, logits.shape[1]);
  const { indices, values } = tf.topk(logits, kk);
  const idx = await indices.data();
  tf.dispose([indices, values]);
  let top1 = 0;
  let topk = 0;
  for (let i = 0; i < labels.length; i++) {
    if (idx[i * kk] === labels[i]) top1++;
    for (let j = 0; j < kk; j++)
      if (idx[i * kk + j] === labels[i]) {
        topk++;
        break;
      }
  }
  return { top1, topk };
}

/** A running mean that PaddleClas resets after the first 10 steps (warm-up steps distort batch_cost). */
export class RunningMean {
  private sum = 0;
  private n = 0;
  add(v: number): void {
    this.sum += v;
    this.n++;
  }
  get mean(): number {
    return this.n ? this.sum / this.n : 0;
  }
  get total(): number {
    return this.sum;
  }
  reset(): void {
    this.sum = 0;
    this.n = 0;
  }
}

/** Seconds since `t0` (performance.now() milliseconds). */
export const since = (t0: number) => (performance.now() - t0) / 1000;
