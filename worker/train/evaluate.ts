/**
 * One pass over the validation set on this worker's shard; metrics summed over all workers, so every rank
 * returns the same global figures.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { HarDNet } from '../model/hardnet.js';
import type { DataLoader } from '../data/loader.js';
import type { ProcessGroup } from '../collectives/index.js';
import { crossEntropy } from './step.js';
import { RunningMean, since, topkCorrect } from './metrics.js';

export interface EvalResult { top1: number; top5: number; loss: number; samples: number; batchCost: number; readerCost: number; seconds: number }

export interface EvalHooks {
  /** called every `printInterval` batches with this worker's running figures */
  onStep?: (step: number, m: { top1: number; top5: number; loss: number; batchCost: number; readerCost: number; ips: number }) => void;
  printInterval?: number;
  topk?: number;
}

export async function evaluate(model: HarDNet, loader: DataLoader, group: ProcessGroup, hooks: EvalHooks = {}): Promise<EvalResult> {
  const k = hooks.topk ?? 5;
  const sums = new Float64Array(4); // top1, topk, loss*n, n
  const batchCost = new RunningMean();
  const readerCost = new RunningMean();
  const start = performance.now();
  let step = 0;
  let tBatch = performance.now();
  for await (const batch of loader) {
    readerCost.add(batch.readerCost);
    const x = tf.tensor4d(batch.images, batch.shape);
    const y = tf.tensor1d(batch.labels, 'int32');
    const logits = model.forward(x, { training: false });
    const loss = crossEntropy(logits, y);
    const [lossValue] = await loss.data();
    const c = await topkCorrect(logits, batch.labels, k);
    tf.dispose([x, y, logits, loss]);
    const n = batch.labels.length;
    sums[0] += c.top1; sums[1] += c.topk; sums[2] += lossValue * n; sums[3] += n;
    batchCost.add(since(tBatch));
    tBatch = performance.now();
    if (hooks.onStep && step % (hooks.printInterval ?? 10) === 0) {
      hooks.onStep(step, { top1: c.top1 / n, top5: c.topk / n, loss: lossValue, batchCost: batchCost.mean, readerCost: readerCost.mean, ips: n / Math.max(batchCost.mean, 1e-9) });
    }
    step++;
  }
  const global = Float32Array.from(sums);
  await group.allReduce(global, 'sum');
  const samples = global[3];
  return {
    top1: global[0] / samples, top5: global[1] / samples, loss: global[2] / samples, samples,
    batchCost: batchCost.mean, readerCost: readerCost.mean, seconds: since(start),
  };
}
