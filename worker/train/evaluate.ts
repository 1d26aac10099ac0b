/**
 * One pass over the validation set on this worker's shard. Every worker sees the same number of batches (the
 * sampler pads), so each batch's figures are averaged over the workers as they come, as PaddleClas does, and the
 * pass's figures are summed over all workers: every rank returns the same global result.
 *
 * Metrics travel by allGather (float64 on the wire), not by the gradient all-reduce, whose float16 wire option
 * would overflow loss sums and round sample counts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { HarDNet } from '../model/hardnet.js';
import type { DataLoader } from '../data/loader.js';
import type { ProcessGroup } from '../collectives/index.js';
import { endLine, type EndFields } from '../../shared/log_format.js';
import { crossEntropy } from './step.js';
import { RunningMean, since, topkCorrect } from './metrics.js';

export interface EvalResult {
  top1: number;
  top5: number;
  loss: number;
  samples: number;
  batchCost: number;
  readerCost: number;
  seconds: number;
}

export interface EvalHooks {
  /** called every `printInterval` batches with the batch's figures averaged over the workers */
  onStep?: (
    step: number,
    m: { top1: number; top5: number; loss: number; batchCost: number; readerCost: number; ips: number },
  ) => void;
  printInterval?: number;
  topk?: number;
  /** logits are divided by this before the loss (see TrainConfig.loss_temperature) */
  temperature?: number;
}

/** Column sums of the rows every worker contributed. */
function sumOver(rows: number[][]): number[] {
  return rows[0].map((_, j) => rows.reduce((s, r) => s + r[j], 0));
}

export async function evaluate(
  model: HarDNet,
  loader: DataLoader,
  group: ProcessGroup,
  hooks: EvalHooks = {},
): Promise<EvalResult> {
  const k = hooks.topk ?? 5;
  const totals = [0, 0, 0, 0]; // top1, topk, loss * n, n — over all workers
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
    const scaled =
      hooks.temperature && hooks.temperature !== 1 ? (tf.div(logits, hooks.temperature) as tf.Tensor2D) : logits;
    const loss = crossEntropy(scaled, y);
    const [lossValue] = await loss.data();
    const c = await topkCorrect(logits, batch.labels, k);
    tf.dispose([x, y, logits, scaled, loss]);
    batch.release();
    const n = batch.labels.length;
    const mine = [c.top1, c.topk, lossValue * n, n];
    const all = sumOver(await group.allGather(mine));
    all.forEach((v, j) => {
      totals[j] += v;
    });
    batchCost.add(since(tBatch));
    tBatch = performance.now();
    if (hooks.onStep && step % (hooks.printInterval ?? 10) === 0) {
      hooks.onStep(step, {
        top1: all[0] / all[3],
        top5: all[1] / all[3],
        loss: all[2] / all[3],
        batchCost: batchCost.mean,
        readerCost: readerCost.mean,
        ips: n / Math.max(batchCost.mean, 1e-9),
      });
    }
    step++;
  }
  const samples = totals[3];
  return {
    top1: totals[0] / samples,
    top5: totals[1] / samples,
    loss: totals[2] / samples,
    samples,
    batchCost: batchCost.mean,
    readerCost: readerCost.mean,
    seconds: since(start),
  };
}

/** The figures of a validation pass's END line; ips is per worker, as on the step lines. */
export function validEndFields(epoch: number, v: EvalResult, topk: number, worldSize: number): EndFields {
  return {
    epoch,
    mode: 'valid',
    topk,
    top1: v.top1,
    top5: v.top5,
    loss: v.loss,
    batchCost: v.batchCost,
    readerCost: v.readerCost,
    batchCostSum: v.seconds,
    ips: v.samples / worldSize / v.seconds,
  };
}

/** PaddleClas's END line of a validation pass. */
export function validEndLine(epoch: number, v: EvalResult, topk: number, worldSize: number): string {
  return endLine(validEndFields(epoch, v, topk, worldSize));
}
