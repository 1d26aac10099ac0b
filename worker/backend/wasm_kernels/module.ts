// Loads the clang-built SIMD kernel module (native/kernels/*.c) into tfjs-backend-wasm's own memory, so the
// kernels read their inputs where the tensors live and write straight into the output tensors.
//
// Why shared: with a memory of its own the module needed every input copied in and every output copied out, a
// noticeable part of a HarDNet39ds training step (batch 64 @ 32) and all of it memory traffic, which is also what two
// workers on one machine contend for. Why it is safe: the module imports the memory and has no data segment or
// start function (build.sh refuses both, kernelModule checks the shipped bytes), so instantiating it writes nothing; its shadow stack (two kernels keep 128 bytes
// there) is a region malloc'd from tfjs's heap, with the stack pointer set to its top before any call; the
// kernels' scratch space is malloc'd the same way. Nothing is cached as a typed-array view: tfjs's malloc may grow
// the memory, which detaches views, so kernels take plain byte offsets.
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { KERNELS_WASM_BASE64 } from './kernels_wasm.js';
import { KernelInvariantError, WasmKernelError } from './errors.js';

export interface KernelExports {
  __stack_pointer: WebAssembly.Global;
  /** m: the output tile, 2 for F(2x2, 3x3), 4 for F(4x4, 3x3) */
  winograd_scratch_bytes(n: number, oh: number, ow: number, ci: number, co: number, m: number): number;
  conv3x3_winograd(
    x: number,
    w: number,
    y: number,
    n: number,
    h: number,
    wd: number,
    ci: number,
    oh: number,
    ow: number,
    co: number,
    pt: number,
    pl: number,
    flip: number,
    m: number,
    scratch: number,
  ): void;
  /** m: the dy tile, 2 for F(3x3, 2x2), 4 for F(3x3, 4x4) */
  winograd_filter_scratch_bytes(n: number, oh: number, ow: number, ci: number, co: number, m: number): number;
  conv3x3_winograd_filter(
    x: number,
    dy: number,
    dw: number,
    n: number,
    h: number,
    wd: number,
    ci: number,
    oh: number,
    ow: number,
    co: number,
    pt: number,
    pl: number,
    m: number,
    scratch: number,
  ): void;
  conv_backprop_filter_scratch_bytes(co: number): number;
  conv_backprop_filter(
    x: number,
    dy: number,
    dw: number,
    n: number,
    h: number,
    w: number,
    ci: number,
    oh: number,
    ow: number,
    co: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
    scratch: number,
  ): void;
  conv_backprop_input_scratch_bytes(k: number, co: number): number;
  conv_backprop_input(
    dy: number,
    w: number,
    dx: number,
    n: number,
    h: number,
    wd: number,
    ci: number,
    oh: number,
    ow: number,
    co: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
    scratch: number,
  ): void;
  depthwise_backprop_input(
    dy: number,
    w: number,
    dx: number,
    n: number,
    h: number,
    wd: number,
    c: number,
    oh: number,
    ow: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
  ): void;
  depthwise_backprop_filter(
    x: number,
    dy: number,
    dw: number,
    n: number,
    h: number,
    w: number,
    c: number,
    oh: number,
    ow: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
  ): void;
  concat_rows(out: number, ins: number, widths: number, k: number, rows: number): void;
  split_rows(x: number, outs: number, widths: number, k: number, rows: number): void;
  maxpool_backprop(
    x: number,
    dy: number,
    dx: number,
    n: number,
    h: number,
    w: number,
    c: number,
    oh: number,
    ow: number,
    kh: number,
    kw: number,
    sh: number,
    sw: number,
    pt: number,
    pl: number,
  ): void;
  bn_train_forward(
    xy: number,
    gamma: number,
    beta: number,
    mean: number,
    variance: number,
    m: number,
    c: number,
    eps: number,
    relu6: number,
    scratch: number,
  ): void;
  bn_train_backward(
    x: number,
    dydx: number,
    gamma: number,
    beta: number,
    mean: number,
    variance: number,
    dgamma: number,
    dbeta: number,
    m: number,
    c: number,
    eps: number,
    relu6: number,
    scratch: number,
  ): void;
}

const STACK_BYTES = 64 * 1024;
const ALIGN = 64;

let compiled: WebAssembly.Module | undefined;

/**
 * Section ids of a wasm binary. Instantiating a module with a data section (11) or a start function (8, which is
 * how clang zero-fills statics) would write into tfjs's heap at fixed addresses; build.sh refuses to emit either, and
 * this checks the bytes actually shipped.
 */
export function wasmSectionIds(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let at = 8; // magic and version
  while (at < bytes.length) {
    const id = bytes[at++]!;
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      // unsigned LEB128
      const b = bytes[at++]!;
      size += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    ids.push(id);
    at += size;
  }
  return ids;
}

/** The compiled module (synchronously, once: it is ~15 KB); registering the kernels calls it so a broken build fails early. */
export function kernelModule(): WebAssembly.Module {
  if (!compiled) {
    const bytes = Buffer.from(KERNELS_WASM_BASE64, 'base64');
    const writes = wasmSectionIds(bytes).filter((id) => id === 8 || id === 11);
    if (writes.length > 0) {
      throw new WasmKernelError(
        `wasm training kernels: kernels_wasm.ts holds a module with a ${writes.includes(11) ? 'data section' : 'start function'}, which would write into tfjs-backend-wasm's heap; rebuild it with native/kernels/build.sh`,
      );
    }
    compiled = new WebAssembly.Module(bytes);
  }
  return compiled;
}

interface Binding {
  memory: WebAssembly.Memory;
  kernels: KernelExports;
  scratch: { pointer: number; bytes: number };
}
/** one instance per backend instance; a removed backend takes its instance (and heap) with it */
const bindings = new WeakMap<BackendWasm, Binding>();

/** The parts of the backend's Emscripten module used here (its typings leave them out). */
interface EmscriptenHeap {
  asm?: { memory?: unknown };
  _malloc(bytes: number): number;
  _free(pointer: number): void;
}
const heapOf = (backend: BackendWasm) => backend.wasm as unknown as EmscriptenHeap;

function memoryOf(backend: BackendWasm): WebAssembly.Memory {
  const memory = heapOf(backend).asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) {
    throw new WasmKernelError(
      'wasm training kernels: this tfjs-backend-wasm build does not expose its WebAssembly.Memory (Module.asm.memory)',
    );
  }
  // Node gets the single-threaded SIMD build (tfjs reports no multithread support there); the threaded one's
  // memory is shared, which this module (built without -matomics) cannot import
  if (typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer) {
    throw new WasmKernelError(
      'wasm training kernels: tfjs-backend-wasm runs its multi-threaded build (shared memory), which these kernels do not support',
    );
  }
  return memory;
}

/** tfjs's malloc as an unsigned byte offset (above 2 GiB Emscripten returns it as a negative int32), never 0 */
function malloc(backend: BackendWasm, bytes: number, what: string): number {
  const pointer = heapOf(backend)._malloc(bytes) >>> 0;
  if (pointer === 0)
    throw new WasmKernelError(
      `wasm training kernels: tfjs-backend-wasm's heap has no room for the ${what} (${bytes} bytes)`,
    );
  return pointer;
}

function bind(backend: BackendWasm): Binding {
  let binding = bindings.get(backend);
  if (binding) return binding;
  const memory = memoryOf(backend);
  const kernels = new WebAssembly.Instance(kernelModule(), { env: { memory } }).exports as unknown as KernelExports;
  // never freed: the instance lives as long as the backend (a new backend gets a new instance and region)
  const stack = malloc(backend, STACK_BYTES, "kernels' stack");
  kernels.__stack_pointer.value = Math.floor((stack + STACK_BYTES) / 16) * 16;
  binding = { memory, kernels, scratch: { pointer: 0, bytes: 0 } };
  bindings.set(backend, binding);
  return binding;
}

/** The kernels, instantiated on `backend`'s memory (once per backend). */
export function kernelsOn(backend: BackendWasm): KernelExports {
  return bind(backend).kernels;
}

/** Byte offset of a tensor's values in the backend's memory. */
export function offsetOf(backend: BackendWasm, t: TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (!data)
    throw new KernelInvariantError(
      `wasm training kernels: tensor ${JSON.stringify(t.shape)} has no data on the wasm backend`,
    );
  return data.memoryOffset;
}

/**
 * A 64-byte aligned scratch region of at least `bytes` in the backend's memory, kept between calls and replaced
 * by a larger one when a call needs more: kernels run one at a time on the JS thread, so one region serves all.
 * Allocating may grow the memory: offsets stay valid, typed-array views taken before do not.
 */
export function scratchOn(backend: BackendWasm, bytes: number): number {
  const b = bind(backend);
  if (b.scratch.bytes < bytes) {
    if (b.scratch.pointer) heapOf(backend)._free(b.scratch.pointer);
    const size = Math.max(bytes, 2 * b.scratch.bytes);
    b.scratch = { pointer: 0, bytes: 0 }; // freed: if the malloc below throws, nothing points at the old region
    b.scratch = { pointer: malloc(backend, size + ALIGN, "kernels' scratch space"), bytes: size };
  }
  return Math.ceil(b.scratch.pointer / ALIGN) * ALIGN;
}

/** Writes int32 values (pointer/width tables for the kernels) at a byte offset. */
export function writeInts(backend: BackendWasm, offset: number, values: ArrayLike<number>): void {
  new Int32Array(bind(backend).memory.buffer, offset, values.length).set(values);
}

/** Copies `floats` values from one byte offset of the backend's memory to another (memmove). */
export function copyFloats(backend: BackendWasm, to: number, from: number, floats: number): void {
  new Uint8Array(bind(backend).memory.buffer).copyWithin(to, from, from + floats * 4);
}
