// Loads the clang-built SIMD kernel module (native/kernels/*.c) and moves tensors in and out
// of its memory. The module owns a separate WebAssembly.Memory: sharing tfjs-backend-wasm's
// heap would let clang's stack and static data overwrite tfjs allocations. Copies run at
// memcpy speed (~11 GB/s), small next to the kernels' arithmetic.
import { KERNELS_WASM_BASE64 } from './kernels_wasm.js';

export interface KernelExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  conv_backprop_filter_scratch_bytes(co: number): number;
  conv_backprop_filter(x: number, dy: number, dw: number, n: number, h: number, w: number, ci: number,
    oh: number, ow: number, co: number, kh: number, kw: number, sh: number, sw: number, pt: number, pl: number,
    scratch: number): void;
  conv_backprop_input_scratch_bytes(k: number, co: number): number;
  conv_backprop_input(dy: number, w: number, dx: number, n: number, h: number, wd: number, ci: number,
    oh: number, ow: number, co: number, kh: number, kw: number, sh: number, sw: number, pt: number, pl: number,
    scratch: number): void;
  depthwise_backprop_input(dy: number, w: number, dx: number, n: number, h: number, wd: number, c: number,
    oh: number, ow: number, kh: number, kw: number, sh: number, sw: number, pt: number, pl: number): void;
  depthwise_backprop_filter(x: number, dy: number, dw: number, n: number, h: number, w: number, c: number,
    oh: number, ow: number, kh: number, kw: number, sh: number, sw: number, pt: number, pl: number): void;
  concat_rows(out: number, ins: number, widths: number, k: number, rows: number): void;
  split_rows(x: number, outs: number, widths: number, k: number, rows: number): void;
  maxpool_backprop(x: number, dy: number, dx: number, n: number, h: number, w: number, c: number, oh: number,
    ow: number, kh: number, kw: number, sh: number, sw: number, pt: number, pl: number): void;
  bn_train_forward(xy: number, gamma: number, beta: number, mean: number, variance: number, m: number, c: number,
    eps: number, relu6: number, scratch: number): void;
  bn_train_backward(x: number, dydx: number, gamma: number, beta: number, mean: number, variance: number,
    dgamma: number, dbeta: number, m: number, c: number, eps: number, relu6: number, scratch: number): void;
}

let kernels: KernelExports | undefined;

/** The instantiated kernel module (compiled synchronously once: it is ~15 KB). */
export function kernelModule(): KernelExports {
  if (!kernels) {
    const module = new WebAssembly.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
    kernels = new WebAssembly.Instance(module, {}).exports as unknown as KernelExports;
  }
  return kernels;
}

const PAGE = 65536;
const ALIGN = 64;

/**
 * Places regions of the given byte sizes back to back above the module's static data,
 * growing its memory when needed, and returns their byte offsets. Every call reuses the same
 * space: kernels run one at a time on the JS thread, so no two calls' regions are alive at once.
 */
export function layoutRegions(byteSizes: number[]): number[] {
  const k = kernelModule();
  let offset = Math.ceil((k.__heap_base.value as number) / ALIGN) * ALIGN;
  const offsets: number[] = [];
  for (const size of byteSizes) {
    offsets.push(offset);
    offset += Math.ceil(size / ALIGN) * ALIGN;
  }
  const have = k.memory.buffer.byteLength;
  if (offset > have) k.memory.grow(Math.ceil((offset - have) / PAGE));
  return offsets;
}

/** Copies a float32 tensor's values into the module at a byte offset. */
export function copyIn(offset: number, values: Float32Array): void {
  new Float32Array(kernelModule().memory.buffer, offset, values.length).set(values);
}

/** Copies `target.length` floats from the module at a byte offset into `target`. */
export function copyOut(offset: number, target: Float32Array): void {
  target.set(new Float32Array(kernelModule().memory.buffer, offset, target.length));
}

/** Copies int32 values (pointer/width tables for the kernels) into the module at a byte offset. */
export function copyInInts(offset: number, values: ArrayLike<number>): void {
  new Int32Array(kernelModule().memory.buffer, offset, values.length).set(values);
}
