// DepthwiseConv2dNativeBackpropInput / -Filter for tfjs-backend-wasm (which has neither):
// SIMD loops over contiguous NHWC channels in native/kernels/depthwise_grad.c. Channel
// multiplier 1 only (HarDNet's depthwise convs); other multipliers are refused with an error.
import {
  backend_util,
  DepthwiseConv2dNativeBackpropFilter,
  type DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInput,
  type DepthwiseConv2dNativeBackpropInputAttrs,
  type KernelConfig,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelsOn, offsetOf } from './module.js';
import { checkConvInfo, checkFloat32, checkShape, requireInput } from './tensors.js';
import { KernelInvariantError } from './errors.js';

type Shape4 = [number, number, number, number];
type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown };

function depthwiseInfo(
  kernel: string,
  inShape: Shape4,
  filterShape: Shape4,
  attrs: {
    strides: [number, number] | number;
    dilations: [number, number] | number;
    pad: DepthwiseConv2dNativeBackpropInputAttrs['pad'];
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  },
): backend_util.Conv2DInfo {
  if (filterShape[3] !== 1)
    throw new KernelInvariantError(
      `${kernel}: only channel multiplier 1 is implemented, filter shape is [${filterShape}]`,
    );
  const info = backend_util.computeConv2DInfo(
    inShape,
    filterShape,
    attrs.strides,
    attrs.dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  checkConvInfo(info, kernel);
  return info;
}

function depthwiseBackpropInput(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const kernel = DepthwiseConv2dNativeBackpropInput;
  const dy = requireInput(args.inputs, 'dy', kernel);
  const filter = requireInput(args.inputs, 'filter', kernel);
  const attrs = args.attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  const info = depthwiseInfo(kernel, attrs.inputShape, filter.shape as Shape4, attrs);
  checkShape(dy.shape, info.outShape, kernel, 'dy');
  checkFloat32(dy, kernel, 'dy');
  checkFloat32(filter, kernel, 'filter');
  const out = backend.makeOutput(attrs.inputShape, 'float32');
  kernelsOn(backend).depthwise_backprop_input(
    offsetOf(backend, dy),
    offsetOf(backend, filter),
    offsetOf(backend, out),
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
  return out;
}

function depthwiseBackpropFilter(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const kernel = DepthwiseConv2dNativeBackpropFilter;
  const x = requireInput(args.inputs, 'x', kernel);
  const dy = requireInput(args.inputs, 'dy', kernel);
  const attrs = args.attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = depthwiseInfo(kernel, x.shape as Shape4, attrs.filterShape, attrs);
  checkShape(dy.shape, info.outShape, kernel, 'dy');
  checkFloat32(x, kernel, 'x');
  checkFloat32(dy, kernel, 'dy');
  const out = backend.makeOutput(attrs.filterShape, 'float32');
  kernelsOn(backend).depthwise_backprop_filter(
    offsetOf(backend, x),
    offsetOf(backend, dy),
    offsetOf(backend, out),
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
  return out;
}

export const depthwiseBackpropInputConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropInput as KernelConfig['kernelFunc'],
};

export const depthwiseBackpropFilterConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter as KernelConfig['kernelFunc'],
};
