// Registers the training kernels tfjs-backend-wasm lacks (or has too slow) for a HarDNet step:
// Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropInput/-Filter (missing) and
// Conv2DBackpropInput (replaced: the stock one is an order of magnitude slower), Conv2D (3x3 stride-1 ones as Winograd,
// the rest by the stock kernel); and the memory-bound kernels a step spends its remaining time in: Concat/SplitV
// (row-block copies), MaxPoolGrad, Identity (no copy), Slice and Tile (contiguous-run copies) replace the stock
// ones, and HardnetBatchNormTrain/-Grad are new (fused BatchNorm[+ReLU6], used by worker/model/batchnorm.ts).
// The list was found by running a conv/BN/ReLU6/depthwise/max-pool/concat/mean/matMul/softmax-CE
// step under tf.variableGrads on wasm and collecting every "not registered" kernel.
import { getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
// Imported for its side effect first: the backend registers its own kernels at import time, and
// ours must come after so that they replace, not get replaced by, the stock Conv2DBackpropInput.
import '@tensorflow/tfjs-backend-wasm';
import { conv2DConfig } from './conv2d.js';
import { conv2DBackpropFilterConfig } from './conv2d_backprop_filter.js';
import { conv2DBackpropInputConfig } from './conv2d_backprop_input.js';
import { depthwiseBackpropFilterConfig, depthwiseBackpropInputConfig } from './depthwise_backprop.js';
import { kernelModule } from './module.js';
import { batchNormGradConfig, batchNormTrainConfig } from './batchnorm_train.js';
import { concatConfig, splitVConfig } from './concat_split.js';
import { maxPoolGradConfig } from './max_pool_grad.js';
import { identityConfig } from './identity.js';
import { sliceConfig, tileConfig } from './slice_tile.js';

export const WASM_TRAINING_KERNELS = [
  conv2DConfig,
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  depthwiseBackpropInputConfig,
  depthwiseBackpropFilterConfig,
  batchNormTrainConfig,
  batchNormGradConfig,
  concatConfig,
  splitVConfig,
  maxPoolGradConfig,
  identityConfig,
  sliceConfig,
  tileConfig,
];

let registered = false;

/** Registers the kernels above for backend 'wasm'. Idempotent; safe before or after setBackend. */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  kernelModule(); // compile now so a broken module fails here, not mid-step
  for (const config of WASM_TRAINING_KERNELS) {
    // unregister first: registerKernel over an existing kernel prints a warning on every start
    if (getKernel(config.kernelName, 'wasm')) unregisterKernel(config.kernelName, 'wasm');
    registerKernel(config);
  }
  registered = true;
}

export { WASM_TRAINING_KERNELS as wasmTrainingKernelConfigs };
