// Training-mode BatchNorm as two fused kernels for 'wasm' (native/kernels/train_ops.c): the tensor-op version
// (worker/model/batchnorm.ts) costs ~10 kernel launches and four full passes forward, ~12 backward, and its
// per-channel sums are ones-row GEMMs that are slow at M = N*H*W rows. These read x once for each statistic and
// once to write y; the optional ReLU6 that follows every conv BN in HarDNet is folded in both ways.
//   HardnetBatchNormTrain {x [N,H,W,C], gamma [C], beta [C]} {epsilon, relu6} -> [y, mean, biased variance]
//   HardnetBatchNormGrad  {x, dy, gamma, beta, mean, variance} {epsilon, relu6} -> [dx, dgamma, dbeta]
import type { KernelConfig, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { copyFloats, kernelsOn, offsetOf, scratchOn } from './module.js';
import { checkFloat32, checkShape, requireInput, sizeOf } from './tensors.js';
import { KernelInvariantError } from './errors.js';

export const BATCH_NORM_TRAIN = 'HardnetBatchNormTrain';
export const BATCH_NORM_GRAD = 'HardnetBatchNormGrad';

export interface BatchNormTrainAttrs {
  epsilon: number;
  relu6: boolean;
}

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown };

/** [M, C] view of an NHWC (or any rank >= 1, channels-last) activation. */
function rowsAndChannels(x: TensorInfo, kernel: string): [number, number] {
  if (x.shape.length < 1)
    throw new KernelInvariantError(`${kernel}: 'x' must have a channel axis, got shape [${x.shape}]`);
  const c = x.shape[x.shape.length - 1]!;
  return [sizeOf(x.shape) / c, c];
}

function attrsOf(args: KernelArgs, kernel: string): BatchNormTrainAttrs {
  const a = args.attrs as Partial<BatchNormTrainAttrs> | undefined;
  if (typeof a?.epsilon !== 'number' || !(a.epsilon > 0))
    throw new KernelInvariantError(`${kernel}: attr 'epsilon' must be > 0, got ${a?.epsilon}`);
  return { epsilon: a.epsilon, relu6: a.relu6 === true };
}

function batchNormTrain(args: KernelArgs): TensorInfo[] {
  const kernel = BATCH_NORM_TRAIN;
  const backend = args.backend as BackendWasm;
  const x = requireInput(args.inputs, 'x', kernel);
  const gamma = requireInput(args.inputs, 'gamma', kernel);
  const beta = requireInput(args.inputs, 'beta', kernel);
  const { epsilon, relu6 } = attrsOf(args, kernel);
  const [m, c] = rowsAndChannels(x, kernel);
  checkShape(gamma.shape, [c], kernel, 'gamma');
  checkShape(beta.shape, [c], kernel, 'beta');
  if (m === 0)
    throw new KernelInvariantError(`${kernel}: 'x' of shape [${x.shape}] has no rows to take statistics over`);
  for (const [t, name] of [
    [x, 'x'],
    [gamma, 'gamma'],
    [beta, 'beta'],
  ] as const)
    checkFloat32(t, kernel, name);
  const k = kernelsOn(backend);
  const y = backend.makeOutput(x.shape, 'float32');
  const mean = backend.makeOutput([c], 'float32');
  const variance = backend.makeOutput([c], 'float32');
  const scratch = scratchOn(backend, c * 12);
  // the kernel normalises in place: y starts as a copy of x (x itself is kept for the backward pass)
  copyFloats(backend, offsetOf(backend, y), offsetOf(backend, x), m * c);
  k.bn_train_forward(
    offsetOf(backend, y),
    offsetOf(backend, gamma),
    offsetOf(backend, beta),
    offsetOf(backend, mean),
    offsetOf(backend, variance),
    m,
    c,
    epsilon,
    relu6 ? 1 : 0,
    scratch,
  );
  return [y, mean, variance];
}

function batchNormGrad(args: KernelArgs): TensorInfo[] {
  const kernel = BATCH_NORM_GRAD;
  const backend = args.backend as BackendWasm;
  const x = requireInput(args.inputs, 'x', kernel);
  const dy = requireInput(args.inputs, 'dy', kernel);
  const [m, c] = rowsAndChannels(x, kernel);
  checkShape(dy.shape, x.shape, kernel, 'dy');
  const names = ['gamma', 'beta', 'mean', 'variance'] as const;
  const perChannel = names.map((n) => {
    const t = requireInput(args.inputs, n, kernel);
    checkShape(t.shape, [c], kernel, n);
    checkFloat32(t, kernel, n);
    return t;
  });
  checkFloat32(x, kernel, 'x');
  checkFloat32(dy, kernel, 'dy');
  const { epsilon, relu6 } = attrsOf(args, kernel);
  const k = kernelsOn(backend);
  const dx = backend.makeOutput(x.shape, 'float32');
  const dgamma = backend.makeOutput([c], 'float32');
  const dbeta = backend.makeOutput([c], 'float32');
  const scratch = scratchOn(backend, c * 28);
  // the kernel turns dy into dx in place: dx starts as a copy of dy (dy may feed other gradients)
  copyFloats(backend, offsetOf(backend, dx), offsetOf(backend, dy), m * c);
  const [gOff, bOff, meanOff, varOff] = perChannel.map((t) => offsetOf(backend, t)) as [number, number, number, number];
  k.bn_train_backward(
    offsetOf(backend, x),
    offsetOf(backend, dx),
    gOff,
    bOff,
    meanOff,
    varOff,
    offsetOf(backend, dgamma),
    offsetOf(backend, dbeta),
    m,
    c,
    epsilon,
    relu6 ? 1 : 0,
    scratch,
  );
  return [dx, dgamma, dbeta];
}

export const batchNormTrainConfig: KernelConfig = {
  kernelName: BATCH_NORM_TRAIN,
  backendName: 'wasm',
  kernelFunc: batchNormTrain as unknown as KernelConfig['kernelFunc'],
};

export const batchNormGradConfig: KernelConfig = {
  kernelName: BATCH_NORM_GRAD,
  backendName: 'wasm',
  kernelFunc: batchNormGrad as unknown as KernelConfig['kernelFunc'],
};
