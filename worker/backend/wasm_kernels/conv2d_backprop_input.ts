// Conv2DBackpropInput for tfjs-backend-wasm. The backend has one, but it runs an order of magnitude slower than the
// forward conv at HarDNet shapes (`npm run bench:kernels` prints both), so this replaces it with dcol = dy * W^T as
// a packed SIMD GEMM followed by a vectorised col2im (native/kernels/conv_grad.c), and 3x3 stride-1 ones as a
// Winograd convolution of dy with the flipped filter (native/kernels/winograd.c; see conv2d.ts).
import {
  backend_util,
  Conv2DBackpropInput,
  type Conv2DBackpropInputAttrs,
  type KernelConfig,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelsOn, offsetOf, scratchOn } from './module.js';
import { checkConvInfo, checkFloat32, checkShape, requireInput } from './tensors.js';
import { useWinograd, winogradTile } from './conv2d.js';

function conv2DBackpropInput(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown }): TensorInfo {
  const backend = args.backend as BackendWasm;
  const dy = requireInput(args.inputs, 'dy', Conv2DBackpropInput);
  const filter = requireInput(args.inputs, 'filter', Conv2DBackpropInput);
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as unknown as Conv2DBackpropInputAttrs;
  const info = backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(dataFormat),
  );
  checkConvInfo(info, Conv2DBackpropInput);
  checkShape(dy.shape, info.outShape, Conv2DBackpropInput, 'dy');
  checkFloat32(dy, Conv2DBackpropInput, 'dy');
  checkFloat32(filter, Conv2DBackpropInput, 'filter');
  const k = kernelsOn(backend);
  const kDim = info.filterHeight * info.filterWidth * info.inChannels;
  const out = backend.makeOutput(inputShape, 'float32');
  if (useWinograd(info, info.outChannels, info.inChannels)) {
    // dx is a 3x3 stride-1 conv of dy with the filter flipped and its channel axes swapped, padded by 2 - pad
    const tile = winogradTile('gradient', info.batchSize, info.inHeight, info.inWidth);
    const scratch = scratchOn(
      backend,
      k.winograd_scratch_bytes(info.batchSize, info.inHeight, info.inWidth, info.outChannels, info.inChannels, tile),
    );
    k.conv3x3_winograd(
      offsetOf(backend, dy),
      offsetOf(backend, filter),
      offsetOf(backend, out),
      info.batchSize,
      info.outHeight,
      info.outWidth,
      info.outChannels,
      info.inHeight,
      info.inWidth,
      info.inChannels,
      2 - info.padInfo.top,
      2 - info.padInfo.left,
      1,
      tile,
      scratch,
    );
    return out;
  }
  const scratch = scratchOn(backend, k.conv_backprop_input_scratch_bytes(kDim, info.outChannels));
  k.conv_backprop_input(
    offsetOf(backend, dy),
    offsetOf(backend, filter),
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

export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput as KernelConfig['kernelFunc'],
};
