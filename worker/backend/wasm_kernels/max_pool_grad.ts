// MaxPoolGrad for 'wasm': the stock kernel measured ~125 ms per call at HarDNet's stem shapes; this one takes
// each window's first maximum (row-major, strict '>', as tfjs's cpu kernel and PyTorch do) with SIMD over
// channels and adds dy there (native/kernels/train_ops.c). The stock kernel is not kept as a fallback: it
// needs a setup step that only runs for kernels registered when the backend starts.
import { backend_util, type KernelConfig, MaxPoolGrad, type MaxPoolGradAttrs, type NamedTensorInfoMap,
  type TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { copyIn, copyOut, kernelModule, layoutRegions } from './module.js';
import { checkShape, heapFloats, requireInput, sizeOf } from './tensors.js';

function maxPoolGrad(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown }): TensorInfo {
  const kernel = MaxPoolGrad;
  const backend = args.backend as BackendWasm;
  const dy = requireInput(args.inputs, 'dy', kernel);
  const x = requireInput(args.inputs, 'input', kernel);
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as MaxPoolGradAttrs;
  if (x.shape.length !== 4) throw new Error(`${kernel}: 'input' must be NHWC (rank 4), got shape [${x.shape}]`);
  const info = backend_util.computePool2DInfo(x.shape as [number, number, number, number], filterSize, strides, 1,
    pad, dimRoundingMode);
  checkShape(dy.shape, info.outShape, kernel, 'dy');
  const k = kernelModule();
  const [xOff, dyOff, dxOff] = layoutRegions([sizeOf(x.shape) * 4, sizeOf(dy.shape) * 4, sizeOf(x.shape) * 4]);
  copyIn(xOff, heapFloats(backend, x, kernel, 'input'));
  copyIn(dyOff, heapFloats(backend, dy, kernel, 'dy'));
  k.maxpool_backprop(xOff, dyOff, dxOff, info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.outHeight, info.outWidth, info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth,
    info.padInfo.top, info.padInfo.left);
  const dx = backend.makeOutput(x.shape, 'float32');
  copyOut(dxOff, backend.typedArrayFromHeap(dx) as Float32Array);
  return dx;
}

export const maxPoolGradConfig: KernelConfig = {
  kernelName: MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGrad as unknown as KernelConfig['kernelFunc'],
};
