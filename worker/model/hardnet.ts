/**
 * HarDNet in TensorFlow.js, NHWC, following the official PyTorch model op for op (../shared/reference/hardnet.md):
 * symmetric padding (as 'same', or an explicit pad + 'valid': the forms tfjs-node accepts), ReLU6, BatchNorm with
 * eps 1e-5 and PyTorch's running-statistics update, concat order as in the official HarDBlock.forward. One small
 * function per building block; the layer plan (plan.ts) says what to build, this file says how each block computes.
 *
 * Weights live in tf.Variables keyed by their official state_dict names, in TensorFlow layouts (HWIO convs,
 * [3,3,C,1] depthwise, [in,out] linear).
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's Node bundle registers no gradient functions; the model trains, so it brings them (see register_gradients)
import '../backend/register_gradients.js';
import { resolveVariant, type HarDNetVariant } from './variants.js';
import { tfSeed } from '../../shared/rng.js';
import { batchNormTrain, linear } from './batchnorm.js';
import {
  buildPlan,
  paramSpecs,
  type ConvLayer,
  type DWConvLayer,
  type Entry,
  type HarDBlock,
  type Head,
  type MaxPool,
  type ParamSpec,
} from './plan.js';

export const BN_EPSILON = 1e-5;
/** PyTorch's BatchNorm momentum: running = (1 - m) * running + m * batch */
export const BN_MOMENTUM = 0.1;

/** Batch statistics of one BN layer from a training forward pass, to fold into the running statistics. */
export interface BatchStats {
  prefix: string;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  count: number;
}

export interface ForwardOptions {
  /** BN uses batch statistics (and records them in `batchStats`) */
  training: boolean;
  /** dropout active; defaults to `training` */
  dropout?: boolean;
  /** collects each BN layer's batch mean and biased variance (kept tensors; pass to updateBatchNormStats) */
  batchStats?: BatchStats[];
  /** seed for dropout masks */
  seed?: number;
  /**
   * training: BN normalises over groups of this many images of the batch ("ghost" batch norm, Keras's
   * virtual_batch_size), as it does over each worker's share in a data-parallel run; 0 or absent: the whole batch
   */
  bnGroupSize?: number;
}

export class HarDNet {
  readonly variant: HarDNetVariant;
  readonly classes: number;
  readonly plan: Entry[];
  readonly specs: ParamSpec[];
  /** trainable parameters (conv/BN affine/fc), by official name */
  readonly weights = new Map<string, tf.Variable>();
  /** BN running mean/var, by official name */
  readonly buffers = new Map<string, tf.Variable>();

  constructor(name: string, classes = 1000, seed = 0) {
    this.variant = resolveVariant(name);
    this.classes = classes;
    this.plan = buildPlan(this.variant, classes);
    this.specs = paramSpecs(this.plan);
    this.specs.forEach((s, i) => {
      const init = tf.tidy(() => initialValue(s, seed * 100003 + i));
      const v = tf.variable(init, s.trainable, `${s.name}#${seed}#${Math.random().toString(36).slice(2)}`);
      init.dispose();
      (s.trainable ? this.weights : this.buffers).set(s.name, v);
    });
  }

  /** Trainable variables in state_dict order. */
  trainableVariables(): tf.Variable[] {
    return this.specs.filter((s) => s.trainable).map((s) => this.weights.get(s.name)!);
  }

  forward(x: tf.Tensor4D, opts: ForwardOptions): tf.Tensor2D {
    let dropSeed = opts.seed ?? 0;
    const ctx: Ctx = { model: this, opts, dropout: opts.dropout ?? opts.training, nextSeed: () => dropSeed++ };
    return tf.tidy(() => {
      let h: tf.Tensor4D = x;
      let logits: tf.Tensor2D | undefined;
      for (const e of this.plan) {
        if (e.kind === 'head') logits = head(ctx, e, h);
        else h = entry(ctx, e, h);
      }
      return logits!;
    });
  }

  /**
   * Fold batch statistics into the running statistics as PyTorch does (unbiased variance), and dispose them.
   * On wasm: computed on the values on the host in float32, each operation rounded like the tfjs ops this replaced
   * (so the results are the same bits): as tfjs ops it cost ~8 kernel dispatches per BN layer, a visible part of a
   * small model's step (docs/bench_model.md). On every other backend (tfjs-node's 'tensorflow' above all) the same
   * operations run as tfjs ops on the device: reading the statistics would be three blocking device-to-host copies
   * per BN layer.
   */
  updateBatchNormStats(stats: BatchStats[]): void {
    // ghost batch norm records one entry per group of a layer: the layer's update takes their size-weighted mean
    const byLayer = new Map<string, BatchStats[]>();
    for (const s of stats) byLayer.set(s.prefix, [...(byLayer.get(s.prefix) ?? []), s]);
    const onHost = tf.getBackend() === 'wasm';
    for (const [prefix, groups] of byLayer) {
      const runningMean = this.buffers.get(`${prefix}.norm.running_mean`)!;
      const runningVar = this.buffers.get(`${prefix}.norm.running_var`)!;
      if (onHost) foldOnHost(runningMean, runningVar, groups);
      else foldOnDevice(runningMean, runningVar, groups);
      tf.dispose(groups.flatMap((g) => [g.mean, g.variance]));
    }
  }

  dispose(): void {
    for (const v of [...this.weights.values(), ...this.buffers.values()]) v.dispose();
    this.weights.clear();
    this.buffers.clear();
  }
}

const KEEP = Math.fround(1 - BN_MOMENTUM);
const TAKE = Math.fround(BN_MOMENTUM);

/** running = (1 - m) * running + m * batch, on the host (wasm: the values are in the module's heap anyway). */
function foldOnHost(runningMean: tf.Variable, runningVar: tf.Variable, groups: BatchStats[]): void {
  const f = Math.fround;
  // dataSync may return the backend's own array (cpu backend): read only, write into new arrays
  const rm = runningMean.dataSync() as Float32Array;
  const rv = runningVar.dataSync() as Float32Array;
  const [bm, bu] =
    groups.length === 1
      ? [groups[0].mean.dataSync() as Float32Array, unbiasedVariance(groups[0])]
      : groupMoments(groups);
  const mean = new Float32Array(rm.length);
  const variance = new Float32Array(rv.length);
  for (let i = 0; i < rm.length; i++) {
    mean[i] = f(rm[i] * KEEP) + f(bm[i] * TAKE);
    variance[i] = f(rv[i] * KEEP) + f(bu[i] * TAKE);
  }
  const nm = tf.tensor1d(mean);
  const nv = tf.tensor1d(variance);
  runningMean.assign(nm);
  runningVar.assign(nv);
  tf.dispose([nm, nv]);
}

/** The same update as device ops, in the same float32 operations and order as foldOnHost (the same bits). */
function foldOnDevice(runningMean: tf.Variable, runningVar: tf.Variable, groups: BatchStats[]): void {
  tf.tidy(() => {
    const unbiased = (g: BatchStats) => tf.mul(g.variance, Math.fround(g.count / Math.max(g.count - 1, 1)));
    let bm: tf.Tensor;
    let bu: tf.Tensor;
    if (groups.length === 1) {
      bm = groups[0].mean;
      bu = unbiased(groups[0]);
    } else {
      // ghost batch norm: the groups' size-weighted mean (float32 here, float64 on the host: last-bit differences)
      const total = groups.reduce((a, g) => a + g.count, 0);
      bm = tf.addN(groups.map((g) => tf.mul(g.mean, g.count / total)));
      bu = tf.addN(groups.map((g) => tf.mul(unbiased(g), g.count / total)));
    }
    runningMean.assign(tf.add(tf.mul(runningMean, KEEP), tf.mul(bm, TAKE)) as tf.Tensor1D);
    runningVar.assign(tf.add(tf.mul(runningVar, KEEP), tf.mul(bu, TAKE)) as tf.Tensor1D);
  });
}

/** A layer's batch variance made unbiased (n / (n - 1)) in float32, as PyTorch's running_var takes it. */
function unbiasedVariance(s: BatchStats): Float32Array {
  const v = s.variance.dataSync() as Float32Array;
  const unbias = Math.fround(s.count / Math.max(s.count - 1, 1));
  return v.map((x) => x * unbias);
}

/** Ghost batch norm's groups of one layer: their batch means and unbiased variances, weighted by group size. */
function groupMoments(groups: BatchStats[]): [Float32Array, Float32Array] {
  const total = groups.reduce((a, g) => a + g.count, 0);
  const channels = groups[0].mean.size;
  const m = new Float64Array(channels);
  const u = new Float64Array(channels);
  for (const g of groups) {
    const gm = g.mean.dataSync() as Float32Array;
    const gu = unbiasedVariance(g);
    for (let i = 0; i < channels; i++) {
      m[i] += (gm[i] * g.count) / total;
      u[i] += (gu[i] * g.count) / total;
    }
  }
  return [Float32Array.from(m), Float32Array.from(u)];
}

interface Ctx {
  model: HarDNet;
  opts: ForwardOptions;
  dropout: boolean;
  nextSeed: () => number;
}

/** Official initialisation: Xavier-normal convs, BN 1/0, running stats 0/1, PyTorch's default Linear. */
function initialValue(s: ParamSpec, seed: number): tf.Tensor {
  switch (s.kind) {
    case 'conv':
    case 'depthwise':
      return tf.randomNormal(s.tfShape, 0, Math.sqrt(2 / (s.fanIn + s.fanOut)), 'float32', tfSeed(seed));
    case 'fc_weight':
    case 'fc_bias': {
      const bound = 1 / Math.sqrt(s.fanIn);
      return tf.randomUniform(s.tfShape, -bound, bound, 'float32', tfSeed(seed));
    }
    case 'bn_weight':
    case 'bn_var':
      return tf.ones(s.tfShape);
    case 'bn_bias':
    case 'bn_mean':
      return tf.zeros(s.tfShape);
  }
}

/** BN, followed by ReLU6 when `relu6` (fused into one kernel each way where the backend has it) */
function batchNorm(ctx: Ctx, prefix: string, x: tf.Tensor4D, relu6 = false): tf.Tensor4D {
  const w = ctx.model.weights;
  const gamma = w.get(`${prefix}.norm.weight`)! as tf.Tensor1D;
  const beta = w.get(`${prefix}.norm.bias`)! as tf.Tensor1D;
  if (!ctx.opts.training) {
    const b = ctx.model.buffers;
    const mean = b.get(`${prefix}.norm.running_mean`)! as tf.Tensor1D;
    const variance = b.get(`${prefix}.norm.running_var`)! as tf.Tensor1D;
    const y = tf.batchNorm4d(x, mean, variance, beta, gamma, BN_EPSILON);
    return relu6 ? tf.relu6(y) : y;
  }
  // training normalises with the biased batch variance, as PyTorch does
  const stats = ctx.opts.batchStats;
  const [n, hh, ww] = x.shape;
  const group = ctx.opts.bnGroupSize ?? 0;
  const normalise = (part: tf.Tensor4D) =>
    batchNormTrain(
      part,
      gamma,
      beta,
      BN_EPSILON,
      stats && ((m) => stats.push({ prefix, ...m, count: part.shape[0] * hh * ww })),
      relu6,
    );
  if (group <= 0 || n <= group) return normalise(x);
  // ghost batch norm: each group of images on its own; every group's moments go to the running statistics
  const sizes = Array.from({ length: Math.ceil(n / group) }, (_, i) => Math.min(group, n - i * group));
  return tf.concat4d((tf.split(x, sizes, 0) as tf.Tensor4D[]).map(normalise), 0);
}

/**
 * PyTorch's symmetric padding `pad` on every side, in the forms every backend's kernels take: tfjs-node 4.22's
 * wrappers of MaxPool, MaxPoolGrad and the Conv2D backprops (dist/kernels/*.js) accept only 'valid' and 'same' and
 * throw on a numeric pad; test/tfjs_node_conformance.test.ts runs them on every kernel a step dispatches.
 * - pad 0: 'valid'.
 * - stride 1, odd kernel k, pad (k-1)/2: 'same' pads (k-1)/2 on each side, exactly the symmetric pad.
 * - otherwise (the stride-2 layers): an explicit symmetric tf.pad, then 'valid'. 'same' would pad
 *   max(0, (ceil(n/s)-1)*s + k - n) split with the extra one at the bottom/right: on an even size with k 3, s 2,
 *   that is 0 before and 1 after, not the official model's 1 and 1.
 * `padValue` is what the explicit pad fills in (0 for convolutions).
 */
function symmetric<T extends tf.Tensor4D>(
  x: tf.Tensor4D,
  k: number,
  stride: number,
  pad: number,
  op: (input: tf.Tensor4D, padding: 'valid' | 'same') => T,
  padValue = 0,
): T {
  if (pad === 0) return op(x, 'valid');
  if (stride === 1 && k % 2 === 1 && 2 * pad === k - 1) return op(x, 'same');
  return op(
    tf.pad(
      x,
      [
        [0, 0],
        [pad, pad],
        [pad, pad],
        [0, 0],
      ],
      padValue,
    ),
    'valid',
  );
}

/** ConvLayer: conv k x k (padding k//2 on every side, no bias) -> BN -> ReLU6 */
function convLayer(ctx: Ctx, l: ConvLayer, x: tf.Tensor4D): tf.Tensor4D {
  const w = ctx.model.weights.get(`${l.prefix}.conv.weight`)! as tf.Tensor4D;
  const y = symmetric(x, l.k, l.stride, Math.floor(l.k / 2), (input, padding) =>
    tf.conv2d(input, w, l.stride, padding),
  );
  return batchNorm(ctx, l.prefix, y, true);
}

/** DWConvLayer: depthwise 3x3 (padding 1, no bias) -> BN; no activation */
function dwConvLayer(ctx: Ctx, l: DWConvLayer, x: tf.Tensor4D): tf.Tensor4D {
  const w = ctx.model.weights.get(`${l.prefix}.dwconv.weight`)! as tf.Tensor4D;
  return batchNorm(
    ctx,
    l.prefix,
    symmetric(x, 3, l.stride, 1, (input, padding) => tf.depthwiseConv2d(input, w, l.stride, padding)),
  );
}

/**
 * nn.MaxPool2d(k, stride, pad): PyTorch pads a max-pool with -inf. Padding with 0 instead is exact here because
 * every max-pool of the plan reads a ConvLayer's output, which ends in ReLU6 (>= 0), and every window holds at
 * least one real value: the forward max is unchanged, and where a zero pad ties a real 0 for the maximum, that
 * real 0 gets no gradient either way (ReLU6's gradient is 0 at z <= 0). 0 also matches the exported Layers model
 * (export_layers.ts, ZeroPadding2D) and needs no non-finite value in any kernel.
 */
function maxPool(e: MaxPool, x: tf.Tensor4D): tf.Tensor4D {
  return symmetric(x, e.k, e.stride, e.pad, (input, padding) => tf.maxPool(input, e.k, e.stride, padding), 0);
}

/** HarDBlock: layer L reads the concat of its links (most recent first); output = odd layers and the last. */
function hardBlock(ctx: Ctx, b: HarDBlock, x: tf.Tensor4D): tf.Tensor4D {
  const outs: tf.Tensor4D[] = [x];
  b.layers.forEach((l, i) => {
    const ins = b.links[i].map((j) => outs[j]);
    const input = ins.length > 1 ? tf.concat4d(ins, 3) : ins[0];
    outs.push(l.kind === 'comb' ? dwConvLayer(ctx, l.dw, convLayer(ctx, l.conv, input)) : convLayer(ctx, l, input));
  });
  return tf.concat4d(
    b.outputs.map((j) => outs[j]),
    3,
  );
}

function dropout<T extends tf.Tensor>(ctx: Ctx, x: T, rate: number): T {
  return ctx.dropout && rate > 0 ? (tf.dropout(x, rate, undefined, tfSeed(ctx.nextSeed())) as T) : x;
}

function entry(ctx: Ctx, e: Exclude<Entry, Head>, x: tf.Tensor4D): tf.Tensor4D {
  switch (e.kind) {
    case 'conv':
      return convLayer(ctx, e, x);
    case 'dwconv':
      return dwConvLayer(ctx, e, x);
    case 'maxpool':
      return maxPool(e, x);
    case 'block':
      return hardBlock(ctx, e, x);
    case 'dropout':
      return dropout(ctx, x, e.rate);
  }
}

/**
 * Global average pool over H and W. Its gradient is dy / (H * W) broadcast on the device: tfjs's own Mean
 * gradient multiplies by tf.ones(x.shape), an array made on the host, which on tfjs-node-gpu is a host-to-device
 * copy of the whole activation every step (64 x 7 x 7 x 1024 floats at 224). Same values: dy * 1 / (H * W).
 */
function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  const f = tf.customGrad(((xIn: tf.Tensor) => {
    const [n, h, w, c] = xIn.shape as [number, number, number, number];
    return {
      value: tf.mean(xIn, [1, 2]),
      gradFunc: (dy: tf.Tensor | tf.Tensor[]) =>
        tf.broadcastTo(tf.reshape(tf.div(dy as tf.Tensor, h * w), [n, 1, 1, c]), [n, h, w, c]),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor2D;
}

/** global average pool -> flatten -> dropout -> linear (the network's only bias) */
function head(ctx: Ctx, e: Head, x: tf.Tensor4D): tf.Tensor2D {
  const pooled = dropout(ctx, globalAvgPool(x), e.dropout);
  const w = ctx.model.weights;
  return linear(pooled, w.get(`${e.prefix}.3.weight`)! as tf.Tensor2D, w.get(`${e.prefix}.3.bias`)! as tf.Tensor1D);
}
