// Training-mode BatchNorm as two fused kernels for 'wasm' (native/kernels/train_ops.c): the tensor-op version
// (worker/model/batchnorm.ts) costs ~10 kernel launches and four full passes forward, ~12 backward, and its
// per-channel sums are ones-row GEMMs that are slow at M = N*H*W rows. These read x once for each statistic and
// once to write y; the optional ReLU6 that follows every conv BN in HarDNet is folded in both ways.
//   HardnetBatchNormTrain {x [N,H,W,C], gamma [C], beta [C]} {epsilon, relu6} -> [y, mean, biased variance]
//   HardnetBatchNormGrad  {x, dy, gamma, beta, mean, variance} {epsilon, relu6} -> [dx, dgamma, dbeta]
import type { KernelConfig, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { copyIn, copyOut, kernelModule, layoutRegions } from './module.js';
import { checkShape, heapFloats, requireInput, sizeOf } from './tensors.js';

export const BATCH_NORM_TRAIN = 'HardnetBatchNormTrain';
export const BATCH_NORM_GRAD = 'HardnetBatchNormGrad';

export interface BatchNormTrainAttrs { epsilon: number; relu6: boolean }

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown };

/** [M, C] view of an NHWC (or any rank >= 1, channels-last) activation. */
function rowsAndChannels(x: TensorInfo, kernel: string): [number, number] {
  if (x.shape.length < 1) throw new Error(`${kernel}: 'x' must have a channel axis, got shape [${x.shape}]`);
  const c = x.shape[x.shape.length - 1]!;
  return [sizeOf(x.shape) / c, c];
}

function attrsOf(args: KernelArgs, kernel: string): BatchNormTrainAttrs {
  const a = args.attrs as Partial<BatchNormTrainAttrs> | undefined;
  if (typeof a?.epsilon !== 'number' || !(a.epsilon > 0)) throw new Error(`${kernel}: attr 'epsilon' must be > 0, got ${a?.epsilon}`);
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
  if (m === 0) throw new Error(`${kernel}: 'x' of shape [${x.shape}] has no rows to take statistics over`);
  const k = kernelModule();
  const [xOff, gOff, bOff, meanOff, varOff, scratch] = layoutRegions([m * c * 4, c * 4, c * 4, c * 4, c * 4, c * 12]);
  copyIn(xOff, heapFloats(backend, x, kernel, 'x'));
  copyIn(gOff, heapFloats(backend, gamma, kernel, 'gamma'));
  copyIn(bOff, heapFloats(backend, beta, kernel, 'beta'));
  k.bn_train_forward(xOff, gOff, bOff, meanOff, varOff, m, c, epsilon, relu6 ? 1 : 0, scratch);
  const y = backend.makeOutput(x.shape, 'float32');
  const mean = backend.makeOutput([c], 'float32');
  const variance = backend.makeOutput([c], 'float32');
  copyOut(xOff, backend.typedArrayFromHeap(y) as Float32Array);
  copyOut(meanOff, backend.typedArrayFromHeap(mean) as Float32Array);
  copyOut(varOff, backend.typedArrayFromHeap(variance) as Float32Array);
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
    return heapFloats(backend, t, kernel, n);
  });
  const { epsilon, relu6 } = attrsOf(args, kernel);
  const k = kernelModule();
  const [xOff, dyOff, gOff, bOff, meanOff, varOff, dgOff, dbOff, scratch] =
    layoutRegions([m * c * 4, m * c * 4, c * 4, c * 4, c * 4, c * 4, c * 4, c * 4, c * 28]);
  copyIn(xOff, heapFloats(backend, x, kernel, 'x'));
  copyIn(dyOff, heapFloats(backend, dy, kernel, 'dy'));
  [gOff, bOff, meanOff, varOff].forEach((off, i) => copyIn(off, perChannel[i]!));
  k.bn_train_backward(xOff, dyOff, gOff, bOff, meanOff, varOff, dgOff, dbOff, m, c, epsilon, relu6 ? 1 : 0, scratch);
  const dx = backend.makeOutput(x.shape, 'float32');
  const dgamma = backend.makeOutput([c], 'float32');
  const dbeta = backend.makeOutput([c], 'float32');
  copyOut(dyOff, backend.typedArrayFromHeap(dx) as Float32Array);
  copyOut(dgOff, backend.typedArrayFromHeap(dgamma) as Float32Array);
  copyOut(dbOff, backend.typedArrayFromHeap(dbeta) as Float32Array);
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
