// Conv2DBackpropFilter for tfjs-backend-wasm (which has none): dW = im2col(x)^T * dy, run as a
// packed SIMD GEMM in native/kernels/conv_grad.c; 3x3 stride-1 ones by Winograd F(3x3, 4x4) or F(3x3, 2x2) (winograd.c).
import {
  backend_util,
  Conv2DBackpropFilter,
  type Conv2DBackpropFilterAttrs,
  type KernelConfig,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelsOn, offsetOf, scratchOn } from './module.js';
import { checkConvInfo, checkFloat32, checkShape, requireInput } from './tensors.js';
import { useWinograd, winogradTile } from './conv2d.js';

function conv2DBackpropFilter(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = requireInput(args.inputs, 'x', Conv2DBackpropFilter);
  const dy = requireInput(args.inputs, 'dy', Conv2DBackpropFilter);
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as unknown as Conv2DBackpropFilterAttrs;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(dataFormat),
  );
  checkConvInfo(info, Conv2DBackpropFilter);
  checkShape(dy.shape, info.outShape, Conv2DBackpropFilter, 'dy');
  checkFloat32(x, Conv2DBackpropFilter, 'x');
  checkFloat32(dy, Conv2DBackpropFilter, 'dy');
  const k = kernelsOn(backend);
  const out = backend.makeOutput(filterShape, 'float32');
  if (useWinograd(info, info.inChannels, info.outChannels)) {
    // 3x3 stride 1: F(3x3, 4x4) or F(3x3, 2x2) over the tiles of dy (native/kernels/winograd.c; conv2d.ts says which)
    const tile = winogradTile('gradient', info.batchSize, info.outHeight, info.outWidth);
    const scratch = scratchOn(
      backend,
      k.winograd_filter_scratch_bytes(
        info.batchSize,
        info.outHeight,
        info.outWidth,
        info.inChannels,
        info.outChannels,
        tile,
      ),
    );
    k.conv3x3_winograd_filter(
      offsetOf(backend, x),
      offsetOf(backend, dy),
      offsetOf(backend, out),
      info.batchSize,
      info.inHeight,
      info.inWidth,
      info.inChannels,
      info.outHeight,
      info.outWidth,
      info.outChannels,
      info.padInfo.top,
      info.padInfo.left,
      tile,
      scratch,
    );
    return out;
  }
  const scratch = scratchOn(backend, k.conv_backprop_filter_scratch_bytes(info.outChannels));
  k.conv_backprop_filter(
    offsetOf(backend, x),
    offsetOf(backend, dy),
    offsetOf(backend, out),
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.outChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.padInfo.top,
    info.padInfo.left,
    scratch,
  );
  return out;
}

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter as KernelConfig['kernelFunc'],
};
