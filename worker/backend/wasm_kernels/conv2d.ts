// Conv2D (forward) for tfjs-backend-wasm: 3x3 stride-1 convolutions as Winograd F(2x2, 3x3)
// (native/kernels/winograd.c), everything else by the stock kernel (XNNPACK). XNNPACK's direct convolution already
// runs near what f32x4 mul+add sustains on one core, so the way to a faster HarDNet (whose work is mostly 3x3
// stride-1 layers) is fewer multiplies: Winograd needs 16 per 2x2 output tile and channel pair instead of 36
// (measurements per layer in docs/bench_model.md). Any padding tfjs accepts ('same', 'valid', numbers, explicit)
// arrives as computeConv2DInfo's top/left offsets.
import {
  backend_util,
  Conv2D,
  type Conv2DAttrs,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm'; // registers the stock kernel captured below
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelsOn, offsetOf, scratchOn } from './module.js';
import { requireInput } from './tensors.js';
import { WasmKernelError } from './errors.js';

/**
 * Switches for tests and benchmarks that compare Winograd with the direct kernels, and its tile size: 'auto' picks
 * per call (winogradTile), 2 or 4 forces F(2x2, 3x3) or F(4x4, 3x3) for the forward and the input gradient, and
 * F(3x3, 2x2) or F(3x3, 4x4) for the filter gradient.
 */
export const WINOGRAD: { enabled: boolean; tile: 'auto' | 2 | 4 } = { enabled: true, tile: 'auto' };

/**
 * F(4x4, 3x3) makes 2.25 products per output where F(2x2, 3x3) makes 4, but its filter transform (36 values per
 * channel pair, once per call) and the GEMMs' fewer, longer rows only pay off over enough output pixels: HarDNet68 at
 * batch 8 ran its 3x3 layers in 0.56-0.86 of F(2x2)'s time at 28x28 and larger (6,272+ output pixels a call), level
 * at 14x14 (1,568) and 1.1-1.6x slower at 7x7 (docs/bench_model.md), so the bound sits between.
 */
export const WINOGRAD_F4_MIN_PIXELS = 4096;

/** The output tile of a Winograd call producing n x oh x ow pixels: 4 for F(4x4, 3x3), 2 for F(2x2, 3x3). */
export function winogradTile(n: number, oh: number, ow: number): 2 | 4 {
  if (WINOGRAD.tile !== 'auto') return WINOGRAD.tile;
  return n * oh * ow >= WINOGRAD_F4_MIN_PIXELS ? 4 : 2;
}

/** The fewest channels on either side of a 3x3 stride-1 conv that Winograd takes: HarDNet's narrowest layers (14
 * and 16 channels of growth) were still faster on it than on the direct kernels in both gradients, and as fast or
 * faster in the forward (docs/bench_model.md), so the bound sits just below them; narrower convolutions were not
 * measured and keep the direct kernels. */
export const WINOGRAD_MIN_CHANNELS = 12;

/**
 * Whether a 3x3 stride-1 conv with `inC` channels in and `outC` out (as the GEMM sees them: for the input gradient,
 * the forward's output and input channels) runs as Winograd. Outputs smaller than 4x4 (HarDNet at 32x32 input ends
 * at 2x2 and 1x1) keep the direct kernels, since most of each 2x2 tile would lie outside the image.
 */
export function useWinograd(info: backend_util.Conv2DInfo, inC: number, outC: number): boolean {
  return (
    WINOGRAD.enabled &&
    info.dataFormat === 'channelsLast' &&
    info.filterHeight === 3 &&
    info.filterWidth === 3 &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    inC >= WINOGRAD_MIN_CHANNELS &&
    outC >= WINOGRAD_MIN_CHANNELS &&
    info.outHeight >= 4 &&
    info.outWidth >= 4
  );
}

const stockConfig = getKernel(Conv2D, 'wasm');
if (!stockConfig) throw new WasmKernelError('tfjs-backend-wasm registers no Conv2D kernel to fall back on');
const stock: KernelConfig = stockConfig;

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown };

function conv2D(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = requireInput(args.inputs, 'x', Conv2D);
  const filter = requireInput(args.inputs, 'filter', Conv2D);
  const { strides, pad, dataFormat, dilations, dimRoundingMode } = args.attrs as unknown as Conv2DAttrs;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    strides,
    dilations,
    pad,
    dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(dataFormat),
  );
  if (x.dtype !== 'float32' || filter.dtype !== 'float32' || !useWinograd(info, info.inChannels, info.outChannels))
    return stock.kernelFunc(args as Parameters<KernelFunc>[0]) as TensorInfo;
  const k = kernelsOn(backend);
  const out = backend.makeOutput(info.outShape, 'float32');
  const tile = winogradTile(info.batchSize, info.outHeight, info.outWidth);
  const scratch = scratchOn(
    backend,
    k.winograd_scratch_bytes(info.batchSize, info.outHeight, info.outWidth, info.inChannels, info.outChannels, tile),
  );
  k.conv3x3_winograd(
    offsetOf(backend, x),
    offsetOf(backend, filter),
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
    0,
    tile,
    scratch,
  );
  return out;
}

export const conv2DConfig: KernelConfig = {
  kernelName: Conv2D,
  backendName: 'wasm',
  // the stock kernel binds its C function here; the fallback above needs it
  setupFunc: stock.setupFunc,
  kernelFunc: conv2D as unknown as KernelConfig['kernelFunc'],
};
