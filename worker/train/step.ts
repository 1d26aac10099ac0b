/**
 * One training step. `trainStep` runs it on a worker's batch (forward+backward, the gradient all-reduce, the
 * update) and returns its figures. `computeGradients` is its forward+backward pass of a HarDNet: the loss, the
 * gradient of every trainable parameter (by official name) and the BN batch statistics, which the caller folds
 * into the running statistics after the step (so that a data-parallel job can decide what to do with them;
 * PaddleClas keeps BN statistics per worker).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Mulberry32, mixSeed } from '../../shared/rng.js';
import type { ProcessGroup } from '../collectives/index.js';
import type { Batch } from '../data/loader.js';
import type { MixOperator } from '../data/mix.js';
import type { BatchStats, HarDNet } from '../model/hardnet.js';
import type { FlatParameters } from '../model/flat_params.js';
import type { Optimizer } from '../optim/momentum.js';
import { youngGc } from '../sys/young_gc.js';
import { since, topkCorrect } from './metrics.js';

/**
 * The control bit of the gradients' all-reduce that says "stop": a worker asked to stop sets it, and the call
 * returns it to every worker, so all stop after the same step instead of one leaving the others waiting in the
 * next collective.
 */
export const STOP_REQUESTED = 1;

export interface GradientOptions {
  /** label smoothing epsilon (PaddleClas ls_epsilon) */
  labelSmoothing?: number;
  /** dropout active (default true: this is training) */
  dropout?: boolean;
  seed?: number;
  /** logits are divided by this before the loss (PaddleClas's HarDNet reproduction used 0.5); default 1 */
  temperature?: number;
  /** BN over groups of this many images (ghost batch norm); 0 or absent: the whole batch */
  bnGroupSize?: number;
  /** mixup/cutmix: loss = lam * CE(labels) + (1 - lam) * CE(labelsB) */
  mix?: { labelsB: tf.Tensor1D; lam: number };
}

export interface GradientResult {
  loss: tf.Scalar;
  logits: tf.Tensor2D;
  grads: Map<string, tf.Tensor>;
  batchStats: BatchStats[];
}

/** Mean softmax cross-entropy against integer labels, with optional label smoothing. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, labelSmoothing = 0): tf.Scalar {
  return tf.tidy(() => {
    const onehot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1]);
    return tf.losses.softmaxCrossEntropy(onehot, logits, undefined, labelSmoothing, tf.Reduction.MEAN) as tf.Scalar;
  });
}

export function computeGradients(
  model: HarDNet,
  images: tf.Tensor4D,
  labels: tf.Tensor1D,
  opts: GradientOptions = {},
): GradientResult {
  const batchStats: BatchStats[] = [];
  const vars = model.trainableVariables();
  let logits: tf.Tensor2D | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const out = model.forward(images, {
      training: true,
      dropout: opts.dropout ?? true,
      batchStats,
      seed: opts.seed,
      bnGroupSize: opts.bnGroupSize,
    });
    logits = tf.keep(out);
    const ls = opts.labelSmoothing ?? 0;
    const t = opts.temperature ?? 1;
    const z = t === 1 ? out : (tf.div(out, t) as tf.Tensor2D);
    if (!opts.mix) return crossEntropy(z, labels, ls);
    const { labelsB, lam } = opts.mix;
    return tf.add(tf.mul(crossEntropy(z, labels, ls), lam), tf.mul(crossEntropy(z, labelsB, ls), 1 - lam)) as tf.Scalar;
  }, vars);
  // variableGrads keys gradients by the variables' unique tf names; re-key them by parameter name
  const byName = new Map<string, tf.Tensor>();
  for (const s of model.specs) {
    if (s.trainable) byName.set(s.name, grads[model.weights.get(s.name)!.name]);
  }
  return { loss: value, logits: logits!, grads: byName, batchStats };
}

/** What one training step works on; built once per run (train.ts). */
export interface StepParts {
  model: HarDNet;
  optimizer: Optimizer;
  /** the weights and fused gradients the optimizer updates in place and the all-reduce averages */
  parameters: FlatParameters;
  /**
   * ZeRO stage 1 (sharded_optimizer): the [start, end) of the parameters this rank updates after the
   * reduce-scatter, before the weights are all-gathered; absent: every rank updates all of them
   */
  shard?: [number, number];
  group: ProcessGroup;
  /** mixup/cutmix, when use_mix is on */
  mix?: MixOperator;
  /** this worker's seed (run seed mixed with the rank): dropout and mixing draw from it per iteration */
  seed: number;
  /** label smoothing epsilon, 0 for none */
  labelSmoothing: number;
  temperature: number;
  bnGroupSize: number;
  /** the second accuracy counted, top-k */
  topk: number;
  /** a young-generation collection in every step, during the all-reduce (manual_gc; sys/young_gc.ts) */
  manualGc: boolean;
}

/** Seconds of one step, by what the worker was doing (metrics.jsonl's data_s, compute_s, allreduce_s, optimizer_s). */
export interface StepSplit {
  /** waiting for the batch (the loader's reader_cost) */
  data: number;
  /** mixing, forward+backward, reading the loss and gathering the gradients */
  compute: number;
  /** the gradient all-reduce, including waiting for the slowest worker, less the local work done meanwhile */
  allreduce: number;
  /** the update, disposal, and the BN statistics and accuracy done while the all-reduce ran */
  optimizer: number;
}

export interface StepResult {
  loss: number;
  /** correct top-1 and top-k counts of this worker's batch, against its first labels */
  correct: { top1: number; topk: number };
  /** images in this worker's batch */
  n: number;
  split: StepSplit;
  /** some worker asked to stop: every worker sees it after the same step */
  stop: boolean;
}

/**
 * One data-parallel training step on this worker's batch: forward+backward, the gradients averaged over all
 * workers, the update. Hands the batch's buffer back to the loader and leaves no tensor behind.
 */
export async function trainStep(
  parts: StepParts,
  batch: Batch,
  at: { iteration: number; lr: number; stopRequested: boolean },
): Promise<StepResult> {
  const { model, optimizer: opt, parameters, group, shard } = parts;
  // forward + backward
  let t0 = performance.now();
  const mixed = parts.mix?.(
    batch.images,
    batch.labels,
    batch.shape,
    new Mulberry32(mixSeed(parts.seed, at.iteration, 1)),
  );
  const x = tf.tensor4d(mixed?.images ?? batch.images, batch.shape);
  const y = tf.tensor1d(batch.labels, 'int32');
  const yB = mixed && tf.tensor1d(mixed.labelsB, 'int32');
  const pass = computeGradients(model, x, y, {
    labelSmoothing: parts.labelSmoothing,
    seed: mixSeed(parts.seed, at.iteration),
    mix: mixed && { labelsB: yB!, lam: mixed.lam },
    temperature: parts.temperature,
    bnGroupSize: parts.bnGroupSize,
  });
  const [loss] = await pass.loss.data();
  parameters.packGradients(pass.grads);
  const computeS = since(t0);
  // gradients averaged over all workers; while this worker waits for the others' data, it does the work that
  // does not need the averaged gradients (BN running statistics, accuracy), so a step's skew is not all idle
  t0 = performance.now();
  // the stop request is a control bit of the collective: every rank gets back the OR of all ranks' bits
  const control = at.stopRequested ? STOP_REQUESTED : 0;
  const averaging = shard
    ? group.reduceScatter(parameters.gradients, 'mean', control)
    : group.allReduce(parameters.gradients, 'mean', control);
  averaging.catch(() => {}); // its failure is thrown by the await below, not reported as unhandled meanwhile
  const localStart = performance.now();
  model.updateBatchNormStats(pass.batchStats);
  const correct = await topkCorrect(pass.logits, batch.labels, parts.topk);
  // the pass's intermediate tensors are disposed and its tape is garbage by now: the collection finds few
  // survivors, and a rank that finished first would only wait for the others' data meanwhile
  if (parts.manualGc) youngGc();
  const localS = since(localStart);
  const stop = ((await averaging) & STOP_REQUESTED) !== 0;
  let allreduceS = since(t0) - localS;
  // the update
  t0 = performance.now();
  if (shard) opt.stepSegment(at.lr, shard[0], shard[1]);
  else opt.step(at.lr);
  tf.dispose([x, y, ...(yB ? [yB] : []), pass.loss, pass.logits, ...pass.grads.values()]);
  batch.release(); // the loader reuses the buffer (the tensors that wrapped it are gone)
  let optimizerS = since(t0) + localS;
  if (shard) {
    // every rank's updated segment to every rank (the all-reduce's second half), then assigned
    t0 = performance.now();
    await group.allGatherInPlace(parameters.weights);
    allreduceS += since(t0);
    t0 = performance.now();
    parameters.unpackWeights();
    optimizerS += since(t0);
  }
  return {
    loss,
    correct,
    n: batch.labels.length,
    split: { data: batch.readerCost, compute: computeS, allreduce: allreduceS, optimizer: optimizerS },
    stop,
  };
}
