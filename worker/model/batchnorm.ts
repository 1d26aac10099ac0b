/**
 * Training-mode BatchNorm with a hand-written gradient.
 *
 * tf.moments + tf.batchNorm differentiate correctly, but their generic gradients tile the per-channel statistics
 * to the full activation size and reduce over NHW with Sum/Mean, which the wasm backend does by transposing the
 * whole tensor first; in a HarDNet training step on wasm that made BatchNorm's backward pass the largest cost.
 * Here every per-channel reduction over the M = N*H*W rows of an [M, C] view is a product with a ones row
 * (XNNPACK's fast GEMM, no transpose), and broadcasting does the rest:
 *   xhat = (x - mean) * invStd,  y = gamma * xhat + beta            (biased variance, as PyTorch normalises)
 *   dbeta = sum(dy),  dgamma = sum(dy * xhat)
 *   dx = gamma * invStd * (dy - dbeta / M - xhat * dgamma / M)
 * Where the active backend has the fused kernels (wasm: worker/backend/wasm_kernels/batchnorm_train.ts), the
 * same math runs as one kernel each way, with the ReLU6 that follows a conv's BN folded in (its gradient mask
 * recomputed from x, as tfjs's Relu6 gradient defines it: dy where 0 < z <= 6); the tensor ops above are the
 * fallback for the other backends.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BATCH_NORM_GRAD, BATCH_NORM_TRAIN } from '../backend/wasm_kernels/batchnorm_train.js';

/** ones(1, M) / scale, cached per (M, scale): reductions over rows as a GEMM */
const onesRows = new Map<string, tf.Tensor2D>();
function onesRow(m: number, scale = 1): tf.Tensor2D {
  const key = `${m}/${scale}`;
  let t = onesRows.get(key);
  if (!t) {
    t = tf.keep(tf.fill([1, m], 1 / scale) as tf.Tensor2D);
    onesRows.set(key, t);
  }
  return t;
}

/** Sum over the rows of an [M, C] matrix, as [1, C]. */
function sumRows(x: tf.Tensor2D, scale = 1): tf.Tensor2D {
  return tf.matMul(onesRow(x.shape[0], scale), x);
}

export interface BatchMoments {
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

/**
 * y = BN(x) with batch statistics. `onMoments` receives the batch mean and biased variance (kept tensors, the
 * caller disposes them) for the running-statistics update.
 */
export function batchNormTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  onMoments?: (m: BatchMoments) => void,
  relu6 = false,
): tf.Tensor4D {
  const backend = tf.getBackend();
  if (tf.getKernel(BATCH_NORM_TRAIN, backend) && tf.getKernel(BATCH_NORM_GRAD, backend))
    return fusedBatchNormTrain(x, gamma, beta, epsilon, onMoments, relu6);
  const y = batchNormTrainOps(x, gamma, beta, epsilon, onMoments);
  return relu6 ? tf.relu6(y) : y;
}

/** The fused kernels inside a customGrad: two kernel calls per BN layer and step instead of ~25 ops. */
function fusedBatchNormTrain(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  onMoments: ((m: BatchMoments) => void) | undefined,
  relu6: boolean,
): tf.Tensor4D {
  const attrs = { epsilon, relu6 };
  const f = tf.customGrad(((xIn: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mean, variance] = tf
      .engine()
      .runKernel(BATCH_NORM_TRAIN, { x: xIn, gamma: g, beta: b }, attrs) as tf.Tensor[];
    if (onMoments) onMoments({ mean: tf.keep(mean as tf.Tensor1D), variance: tf.keep(variance as tf.Tensor1D) });
    save([xIn, g, b, mean!, variance!]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, sg, sb, sm, sv] = saved as tf.Tensor[];
        return tf
          .engine()
          .runKernel(
            BATCH_NORM_GRAD,
            { x: sx!, dy: dy as tf.Tensor, gamma: sg!, beta: sb!, mean: sm!, variance: sv! },
            attrs,
          ) as tf.Tensor[];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, gamma, beta) as tf.Tensor4D;
}

/** The tensor-op version (any backend). */
export function batchNormTrainOps(
  x: tf.Tensor4D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  epsilon: number,
  onMoments?: (m: BatchMoments) => void,
): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const m = n * h * w;
  const f = tf.customGrad(((xIn: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const x2 = tf.reshape(xIn, [m, c]) as tf.Tensor2D;
    const mean = sumRows(x2, m);
    const centered = tf.sub(x2, mean) as tf.Tensor2D;
    const variance = sumRows(tf.square(centered) as tf.Tensor2D, m);
    const invStd = tf.rsqrt(tf.add(variance, epsilon));
    const xhat = tf.mul(centered, invStd) as tf.Tensor2D;
    const y = tf.reshape(tf.add(tf.mul(xhat, g), b), [n, h, w, c]);
    if (onMoments) onMoments({ mean: tf.keep(tf.reshape(mean, [c])), variance: tf.keep(tf.reshape(variance, [c])) });
    save([xhat, invStd, g]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sxhat, sinvStd, sg] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const dy2 = tf.reshape(dy as tf.Tensor, [m, c]) as tf.Tensor2D;
        const dbeta = sumRows(dy2);
        const dgamma = sumRows(tf.mul(dy2, sxhat) as tf.Tensor2D);
        const inner = tf.sub(tf.sub(dy2, tf.div(dbeta, m)), tf.mul(sxhat, tf.div(dgamma, m)));
        const dx = tf.reshape(tf.mul(inner, tf.mul(sg, sinvStd)), [n, h, w, c]);
        return [dx, tf.reshape(dgamma, [c]), tf.reshape(dbeta, [c])];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, gamma, beta) as tf.Tensor4D;
}

/**
 * y = x W + b with a gradient that never asks for a transposed GEMM: the wasm backend's matMul with
 * transposeA/transposeB falls off its fast path (an order of magnitude slower; docs/bench_model.md), while an
 * explicit Transpose of the smaller operand followed by a plain matMul stays on it.
 */
export function linear(x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor1D): tf.Tensor2D {
  const f = tf.customGrad(((xIn: tf.Tensor, wIn: tf.Tensor, bIn: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xIn, wIn]);
    return {
      value: tf.add(tf.matMul(xIn as tf.Tensor2D, wIn as tf.Tensor2D), bIn),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
        const d = dy as tf.Tensor2D;
        return [tf.matMul(d, tf.transpose(sw)), tf.matMul(tf.transpose(sx), d), tf.reshape(sumRows(d), [sw.shape[1]])];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, weight, bias) as tf.Tensor2D;
}
