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
 * The 4x4 tiles make 2.25 products per output where the 2x2 ones make 4, but compute whole tiles (on a 7x7 image
 * 64 outputs for 49) and transform the filter into 36 values per channel pair once per call, so they pay off only
 * over enough pixels. HarDNet68 at batch 8 (bench:conv-step --tile 2 / --tile 4, docs/bench_model.md): every 3x3
 * gradient from 7x7 (392 pixels a call) up ran in 0.62-0.98 of the 2x2 tiles' time, except the 7x7 input gradients
 * (1.08); the bound sits just below 392. Smaller calls (a batch of 1 at 7x7 or 14x14) were not measured and keep
 * the 2x2 tiles, which waste less of a small image.
 */
export const WINOGRAD_F4_MIN_PIXELS = 384;

/**
 * The Winograd tile of a call over n x oh x ow pixels (the output of the forward, the size of dy for the filter
 * gradient, of dx for the input gradient): 4 or 2.
 *
 * The forward always takes F(2x2, 3x3). Its values decide the discontinuities of the step, which ReLU6 clips and
 * which max-pool input wins, and F(4x4, 3x3)'s larger rounding (several times F(2x2)'s, test/kernels.test.ts) moved
 * enough of them that HarDNet68's early-layer gradients ended 1.5e-2 (relative L2) off the PyTorch fixture, against
 * 6e-5 with F(2x2) and the fixture test's bound of 1e-3. The gradients' own rounding only passes on linearly: with
 * the 4x4 tiles in the input or the filter gradient the fixture's errors were those of the 2x2 tiles. So the
 * forward, eval and infer keep their values, and the two gradients take the 4x4 tiles.
 */
export function winogradTile(kernel: 'forward' | 'gradient', n: number, oh: number, ow: number): 2 | 4 {
  if (WINOGRAD.tile !== 'auto') return WINOGRAD.tile;
  if (kernel === 'forward') return 2;
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
  const tile = winogradTile('forward', info.batchSize, info.outHeight, info.outWidth);
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
