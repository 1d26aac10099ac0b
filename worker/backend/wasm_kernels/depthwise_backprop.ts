// DepthwiseConv2dNativeBackpropInput / -Filter for tfjs-backend-wasm (which has neither):
// SIMD loops over contiguous NHWC channels in native/kernels/depthwise_grad.c. Channel
// multiplier 1 only (HarDNet's depthwise convs); other multipliers are refused with an error.
import { backend_util, DepthwiseConv2dNativeBackpropFilter, type DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInput, type DepthwiseConv2dNativeBackpropInputAttrs, type KernelConfig,
  type NamedTensorInfoMap, type TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { copyIn, copyOut, kernelModule, layoutRegions } from './module.js';
import { checkConvInfo, checkShape, heapFloats, requireInput, sizeOf } from './tensors.js';

type Shape4 = [number, number, number, number];
type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown };

function depthwiseInfo(kernel: string, inShape: Shape4, filterShape: Shape4,
  attrs: { strides: [number, number] | number; dilations: [number, number] | number;
    pad: DepthwiseConv2dNativeBackpropInputAttrs['pad']; dimRoundingMode?: 'floor' | 'round' | 'ceil' }): backend_util.Conv2DInfo {
  if (filterShape[3] !== 1)
    throw new Error(`${kernel}: only channel multiplier 1 is implemented, filter shape is [${filterShape}]`);
  const info = backend_util.computeConv2DInfo(inShape, filterShape, attrs.strides, attrs.dilations, attrs.pad,
    attrs.dimRoundingMode, true);
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
  const k = kernelModule();
  const [dyOff, wOff, dxOff] = layoutRegions([sizeOf(dy.shape) * 4, sizeOf(filter.shape) * 4, sizeOf(attrs.inputShape) * 4]);
  copyIn(dyOff, heapFloats(backend, dy, kernel, 'dy'));
  copyIn(wOff, heapFloats(backend, filter, kernel, 'filter'));
  k.depthwise_backprop_input(dyOff, wOff, dxOff, info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.outHeight, info.outWidth, info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth,
    info.padInfo.top, info.padInfo.left);
  const out = backend.makeOutput(attrs.inputShape, 'float32');
  copyOut(dxOff, backend.typedArrayFromHeap(out) as Float32Array);
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
  const k = kernelModule();
  const [xOff, dyOff, dwOff] = layoutRegions([sizeOf(x.shape) * 4, sizeOf(dy.shape) * 4, sizeOf(attrs.filterShape) * 4]);
  copyIn(xOff, heapFloats(backend, x, kernel, 'x'));
  copyIn(dyOff, heapFloats(backend, dy, kernel, 'dy'));
  k.depthwise_backprop_filter(xOff, dyOff, dwOff, info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.outHeight, info.outWidth, info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth,
    info.padInfo.top, info.padInfo.left);
  const out = backend.makeOutput(attrs.filterShape, 'float32');
  copyOut(dwOff, backend.typedArrayFromHeap(out) as Float32Array);
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
