// Concat and SplitV for 'wasm' as row-block copies in native/kernels/train_ops.c. The stock kernels are JS
// loops that make a subarray and a set() per row: a channel concat in HarDNet (rows = N*H*W, a few dozen
// channels each) spends its time in that per-row overhead, and SplitV (the gradient of concat) goes through
// Slice once per part. Any axis reduces to rows = prod(shape[:axis]) x width = prod(shape[axis:]).
// float32 only; other dtypes (int32, bool, string) and degenerate cases go to the stock kernels, captured
// here before index.ts replaces them.
import {
  backend_util,
  Concat,
  type ConcatAttrs,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  SplitV,
  type SplitVAttrs,
  type TensorInfo,
  util,
} from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm'; // registers the stock kernels captured below
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { kernelsOn, offsetOf, scratchOn, writeInts } from './module.js';
import { sizeOf } from './tensors.js';
import { KernelInvariantError, WasmKernelError } from './errors.js';

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown };

function stock(name: string): KernelFunc {
  const k = getKernel(name, 'wasm');
  if (!k) throw new WasmKernelError(`tfjs-backend-wasm registers no ${name} kernel to fall back on`);
  return k.kernelFunc;
}
const stockConcat = stock(Concat);
const stockSplitV = stock(SplitV);

function concat(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const inputs = args.inputs as unknown as TensorInfo[];
  const { axis } = args.attrs as unknown as ConcatAttrs;
  const parts = inputs.filter((t) => sizeOf(t.shape) > 0);
  if (parts.length < 2 || inputs.some((t) => t.dtype !== 'float32'))
    return stockConcat(args as Parameters<KernelFunc>[0]) as TensorInfo;
  const $axis = util.parseAxisParam(axis, inputs[0]!.shape)[0]!;
  backend_util.assertParamsConsistent(
    inputs.map((t) => t.shape),
    $axis,
  );
  const outShape = backend_util.computeOutShape(
    inputs.map((t) => t.shape),
    $axis,
  );
  const rows = sizeOf(outShape.slice(0, $axis));
  const widths = parts.map((t) => sizeOf(t.shape.slice($axis)));
  const k = kernelsOn(backend);
  const out = backend.makeOutput(outShape, 'float32');
  const table = scratchOn(backend, parts.length * 8);
  writeInts(backend, table, [...parts.map((t) => offsetOf(backend, t)), ...widths]);
  k.concat_rows(offsetOf(backend, out), table, table + parts.length * 4, parts.length, rows);
  return out;
}

function splitV(args: KernelArgs): TensorInfo[] {
  const backend = args.backend as BackendWasm;
  const x = args.inputs.x;
  if (!x) throw new KernelInvariantError(`${SplitV}: missing input 'x'`);
  const { numOrSizeSplits, axis } = args.attrs as unknown as SplitVAttrs;
  const $axis = util.parseAxisParam(axis, x.shape)[0]!;
  const sizes = backend_util.prepareSplitSize(
    x as Parameters<typeof backend_util.prepareSplitSize>[0],
    numOrSizeSplits,
    $axis,
  );
  if (x.dtype !== 'float32' || sizes.length < 2 || sizes.some((s) => s <= 0) || sizeOf(x.shape) === 0)
    return stockSplitV(args as Parameters<KernelFunc>[0]) as TensorInfo[];
  const rows = sizeOf(x.shape.slice(0, $axis));
  const inner = sizeOf(x.shape.slice($axis + 1));
  const widths = sizes.map((s) => s * inner);
  const k = kernelsOn(backend);
  const outs = sizes.map((size) => {
    const shape = x.shape.slice();
    shape[$axis] = size;
    return backend.makeOutput(shape, 'float32');
  });
  const table = scratchOn(backend, sizes.length * 8);
  writeInts(backend, table, [...outs.map((t) => offsetOf(backend, t)), ...widths]);
  k.split_rows(offsetOf(backend, x), table, table + sizes.length * 4, sizes.length, rows);
  return outs;
}

export const concatConfig: KernelConfig = {
  kernelName: Concat,
  backendName: 'wasm',
  kernelFunc: concat as unknown as KernelConfig['kernelFunc'],
};

export const splitVConfig: KernelConfig = {
  kernelName: SplitV,
  backendName: 'wasm',
  kernelFunc: splitV as unknown as KernelConfig['kernelFunc'],
};
