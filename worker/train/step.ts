/**
 * One forward+backward pass of a HarDNet: the loss, the gradient of every trainable parameter (by official name)
 * and the BN batch statistics, which the caller folds into the running statistics after the step (so that a
 * data-parallel job can decide what to do with them; PaddleClas keeps BN statistics per worker).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BatchStats, HarDNet } from '../model/hardnet.js';

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
