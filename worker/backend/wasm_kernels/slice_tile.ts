// Slice and Tile for 'wasm' as copies of the longest contiguous runs the shapes allow. The stock Slice copies one
// innermost row per subarray().set() call, so the gradient of HarDNet's stem pad (a Slice of an [N,114,114,64]
// activation back to 112x112) makes one call per 64 floats; the stock Tile is an element-by-element loop, and
// tf.broadcastTo (the head's global-pool gradient) runs it. Here the innermost dimensions a slice takes whole merge
// into one run per call, and a tile writes each input run once and then doubles blocks with copyWithin.
// Numeric dtypes only (float32, int32); strings, bools, complex and empty tensors go to the stock kernels.
import {
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  Slice,
  type SliceAttrs,
  slice_util,
  type TensorInfo,
  Tile,
  type TileAttrs,
  getKernel,
} from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm'; // registers the stock kernels captured below
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { sizeOf } from './tensors.js';
import { KernelInvariantError, WasmKernelError } from './errors.js';

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: unknown };
type HeapArray = Float32Array | Int32Array;

function stockKernel(name: string): KernelConfig {
  const k = getKernel(name, 'wasm');
  if (!k) throw new WasmKernelError(`tfjs-backend-wasm registers no ${name} kernel to fall back on`);
  return k;
}
const stockSlice = stockKernel(Slice);
const stockTile = stockKernel(Tile);

const handled = (t: TensorInfo) => (t.dtype === 'float32' || t.dtype === 'int32') && sizeOf(t.shape) > 0;

/** Elements per step of each axis of a row-major shape (the last is 1). */
const stridesOf = (shape: number[]) => {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
};

/** The values of `t` in the backend's heap; taken after every makeOutput, which may grow (and detach) the heap. */
const heapView = (backend: BackendWasm, t: TensorInfo) => backend.typedArrayFromHeap(t) as HeapArray;

function slice(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = args.inputs.x;
  if (!x) throw new KernelInvariantError(`${Slice}: missing input 'x'`);
  const { begin, size } = args.attrs as unknown as SliceAttrs;
  const [b, s] = slice_util.parseSliceParams(x as Parameters<typeof slice_util.parseSliceParams>[0], begin, size);
  if (!handled(x) || sizeOf(s) === 0 || slice_util.isSliceContinous(x.shape, b, s))
    return stockSlice.kernelFunc(args as Parameters<KernelFunc>[0]) as TensorInfo;
  const shape = x.shape;
  const strides = stridesOf(shape);
  // the innermost axes the slice takes whole join the run of the axis before them
  let k = shape.length - 1;
  while (k > 0 && b[k] === 0 && s[k] === shape[k]) k--;
  const run = s[k]! * strides[k]!;
  const out = backend.makeOutput(s, x.dtype);
  const xv = heapView(backend, x);
  const ov = heapView(backend, out);
  const runs = sizeOf(s.slice(0, k));
  const idx = new Array<number>(k).fill(0); // position over the axes before k
  for (let r = 0, o = 0; r < runs; r++, o += run) {
    let from = b[k]! * strides[k]!;
    for (let d = 0; d < k; d++) from += (b[d]! + idx[d]!) * strides[d]!;
    ov.set(xv.subarray(from, from + run), o);
    for (let d = k - 1; d >= 0; d--) {
      if (++idx[d]! < s[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

function tile(args: KernelArgs): TensorInfo {
  const backend = args.backend as BackendWasm;
  const x = args.inputs.x;
  if (!x) throw new KernelInvariantError(`${Tile}: missing input 'x'`);
  const { reps } = args.attrs as unknown as TileAttrs;
  const shape = x.shape;
  if (!handled(x) || shape.length === 0 || reps.length !== shape.length || reps.some((r) => r < 1))
    return stockTile.kernelFunc(args as Parameters<KernelFunc>[0]) as TensorInfo;
  const outShape = shape.map((n, d) => n * reps[d]!);
  const inStrides = stridesOf(shape);
  const outStrides = stridesOf(outShape);
  const out = backend.makeOutput(outShape, x.dtype);
  const xv = heapView(backend, x);
  const ov = heapView(backend, out);
  const last = shape.length - 1;
  // out[j] along axis d is x[j % shape[d]]: fill the first repetition of each block, then copy it reps[d] - 1 times
  const fill = (d: number, from: number, to: number): void => {
    if (d === last) {
      const row = xv.subarray(from, from + shape[d]!);
      for (let r = 0; r < reps[d]!; r++) ov.set(row, to + r * shape[d]!);
      return;
    }
    for (let i = 0; i < shape[d]!; i++) fill(d + 1, from + i * inStrides[d]!, to + i * outStrides[d]!);
    const block = shape[d]! * outStrides[d]!;
    for (let r = 1; r < reps[d]!; r++) ov.copyWithin(to + r * block, to, to + block);
  };
  fill(0, 0, 0);
  return out;
}

export const sliceConfig: KernelConfig = {
  kernelName: Slice,
  backendName: 'wasm',
  kernelFunc: slice as unknown as KernelConfig['kernelFunc'],
};

export const tileConfig: KernelConfig = {
  kernelName: Tile,
  backendName: 'wasm',
  // the stock Tile binds its C function here; the fallback above needs it
  setupFunc: stockTile.setupFunc,
  kernelFunc: tile as unknown as KernelConfig['kernelFunc'],
};
