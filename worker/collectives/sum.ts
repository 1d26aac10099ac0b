/**
 * The summation kernels of the ring, on WebAssembly SIMD (native/sum/sum.c, f32x4 add/div).
 *
 * V8 does not vectorise Float32Array loops: the unrolled JS loop ran at 0.9-1.8 ns/element here, f32x4 at ~0.1.
 * The module can only read its own linear memory, so operands are copied in and the result copied out, in
 * blocks of 256 KiB that stay in the L2 cache; all of it together is ~0.4 ns/element (bench:allreduce --kernels).
 * The copies go through byte views, so a received ZeroMQ buffer at any alignment is summed in place with no
 * extra aligned copy. Results are bit-identical to the plain JS loops (single IEEE float32 + and /), which the
 * tests check.
 */
import { SUM_WASM_BASE64 } from './sum_wasm.js';

interface SumExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  add_into(acc: number, src: number, n: number): void;
  add_divide(acc: number, src: number, n: number, d: number): void;
}

/** floats per block: two blocks (512 KiB) fit in L2 next to the chunk being received */
const BLOCK = 1 << 16;

interface Kernel {
  ex: SumExports;
  accAt: number;
  srcAt: number;
  u8: Uint8Array;
  f32: Float32Array;
}
let kernel: Kernel | undefined;

/** Instantiated once per process (synchronously: the module is 1 KB); its memory never grows afterwards. */
function sumKernel(): Kernel {
  if (kernel === undefined) {
    const module = new WebAssembly.Module(Buffer.from(SUM_WASM_BASE64, 'base64'));
    const ex = new WebAssembly.Instance(module, {}).exports as unknown as SumExports;
    const accAt = Math.ceil((ex.__heap_base.value as number) / 64) * 64;
    const srcAt = accAt + BLOCK * 4;
    const end = srcAt + BLOCK * 4;
    const have = ex.memory.buffer.byteLength;
    if (end > have) ex.memory.grow(Math.ceil((end - have) / 65536));
    kernel = { ex, accAt, srcAt, u8: new Uint8Array(ex.memory.buffer), f32: new Float32Array(ex.memory.buffer) };
  }
  return kernel;
}

/** Fills `dst` (a block of the kernel's memory) with the partial sum's bytes starting at byte `offset`. */
export type BlockReader = (dst: Uint8Array, offset: number) => void;
/** Takes the result's bytes for byte `offset` onwards (valid only during the call). */
export type BlockWriter = (src: Uint8Array, offset: number) => void;

/**
 * partial[i] + mine[i] (divided by `divisor` when it is not 1), where the partial sum's float32 bytes come from
 * `read` (a received message at any byte offset, or a shared-memory file) and the result's bytes go to `write`,
 * block by block. When `alsoInto` is given the result is written there too (the owner of a segment keeps the
 * final values it forwards).
 */
export function addBlocks(
  read: BlockReader,
  mine: Float32Array,
  divisor: number,
  write: BlockWriter,
  alsoInto?: Float32Array,
): void {
  const n = mine.length;
  if (alsoInto !== undefined && alsoInto.length !== n)
    throw new RangeError(`addBlocks: result target of ${alsoInto.length} floats for ${n}`);
  const k = sumKernel();
  for (let off = 0; off < n; off += BLOCK) {
    const m = Math.min(BLOCK, n - off);
    read(k.u8.subarray(k.accAt, k.accAt + m * 4), off * 4);
    k.f32.set(mine.subarray(off, off + m), k.srcAt >>> 2);
    if (divisor === 1) k.ex.add_into(k.accAt, k.srcAt, m);
    else k.ex.add_divide(k.accAt, k.srcAt, m, divisor);
    write(k.u8.subarray(k.accAt, k.accAt + m * 4), off * 4);
    if (alsoInto !== undefined) alsoInto.set(k.f32.subarray(k.accAt >>> 2, (k.accAt >>> 2) + m), off);
  }
}

/** addBlocks in place in `acc`, which holds float32 values as bytes (a received message: any byte offset). */
export function addChunk(acc: Uint8Array, mine: Float32Array, divisor = 1, alsoInto?: Float32Array): void {
  if (acc.length !== mine.length * 4) throw new RangeError(`addChunk: ${acc.length} bytes for ${mine.length} floats`);
  addBlocks(
    (dst, o) => dst.set(acc.subarray(o, o + dst.length)),
    mine,
    divisor,
    (src, o) => acc.set(src, o),
    alsoInto,
  );
}

/** acc[i] += src[i] */
export function addInto(acc: Float32Array, src: Float32Array): void {
  if (src.length !== acc.length) throw new RangeError(`addInto: lengths differ (${acc.length} vs ${src.length})`);
  addChunk(new Uint8Array(acc.buffer, acc.byteOffset, acc.byteLength), src);
}

/** acc[i] /= d (mean); division rather than multiplying by 1/d so that the result is the correctly rounded quotient. */
export function divideBy(acc: Float32Array, d: number): void {
  for (let i = 0; i < acc.length; i++) acc[i] /= d;
}
