// MaxPoolGrad for 'wasm': the stock kernel is a scalar loop, slow at HarDNet's stem shapes (bench:kernels); this one takes
// each window's first maximum (row-major, strict '>', as tfjs's cpu kernel and PyTorch do) with SIMD over
// channels and adds dy there (native/kernels/train_ops.c). The stock kernel is not kept as a fallback: it
// needs a setup step that only runs for kernels registered when the backend starts.
import {
  backend_util,
  type KernelConfig,
  MaxPoolGrad,
  type MaxPoolGradAttrs,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelsOn, offsetOf } from './module.js';
import { checkFloat32, checkShape, requireInput } from './tensors.js';
import { KernelInvariantError } from './errors.js';

function maxPoolGrad(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown }): TensorInfo {
  const kernel = MaxPoolGrad;
  const backend = args.backend as BackendWasm;
  const dy = requireInput(args.inputs, 'dy', kernel);
  const x = requireInput(args.inputs, 'input', kernel);
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as MaxPoolGradAttrs;
  if (x.shape.length !== 4)
    throw new KernelInvariantError(`${kernel}: 'input' must be NHWC (rank 4), got shape [${x.shape}]`);
  const info = backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  checkShape(dy.shape, info.outShape, kernel, 'dy');
  checkFloat32(x, kernel, 'input');
  checkFloat32(dy, kernel, 'dy');
  const dx = backend.makeOutput(x.shape, 'float32');
  kernelsOn(backend).maxpool_backprop(
    offsetOf(backend, x),
    offsetOf(backend, dy),
    offsetOf(backend, dx),
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
  );
  return dx;
}

export const maxPoolGradConfig: KernelConfig = {
  kernelName: MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGrad as unknown as KernelConfig['kernelFunc'],
};
