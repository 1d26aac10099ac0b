/**
 * Reading tensor values into a caller's Float32Array without the detours of the generic API.
 *
 * On tfjs-backend-wasm, dataSync() copies the tensor out of the module's heap into a new array (which the caller
 * then copies again) and data() adds a promise per tensor; a step reads ~240 gradient tensors, so a view on the
 * heap saves two copies and a promise each (figures in docs/bench_model.md). The view is used at once and never
 * kept: the heap may grow (and its buffer be replaced) with the next allocation.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export function copyInto(t: tf.Tensor, dst: Float32Array, offset: number): void {
  if (t.dtype !== 'float32') throw new TypeError(`copyInto: tensor of dtype ${t.dtype}, expected float32`);
  if (offset + t.size > dst.length)
    throw new RangeError(`copyInto: ${t.size} values at ${offset} do not fit in ${dst.length}`);
  if (tf.getBackend() === 'wasm') {
    dst.set((tf.backend() as BackendWasm).typedArrayFromHeap(t) as Float32Array, offset);
  } else {
    dst.set(t.dataSync() as Float32Array, offset);
  }
}
