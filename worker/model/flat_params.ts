/**
 * Parameters as one flat Float32Array: each parameter's values back to back, in the order of the map (the
 * model's state_dict order). The fused gradient buffer (train/grads.ts) and the optimizer (optim/momentum.ts)
 * share this layout, so the all-reduced gradients go to the optimizer as they are.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface FlatSlot { name: string; shape: number[]; offset: number; size: number }

export function flatLayout(params: Map<string, tf.Tensor>): { slots: FlatSlot[]; size: number } {
  const slots: FlatSlot[] = [];
  let offset = 0;
  for (const [name, t] of params) {
    slots.push({ name, shape: t.shape, offset, size: t.size });
    offset += t.size;
  }
  return { slots, size: offset };
}

/** Assign each parameter a new tensor made from its slice of `flat` (tfjs tensors are immutable). */
export function assignFromFlat(flat: Float32Array, slots: FlatSlot[], params: Map<string, tf.Variable>): void {
  // the wasm backend copies a new tensor's values into its heap; the others keep the array, so they get their own
  const shares = tf.getBackend() !== 'wasm';
  for (const s of slots) {
    const values = flat.subarray(s.offset, s.offset + s.size);
    const t = tf.tensor(shares ? values.slice() : values, s.shape, 'float32');
    params.get(s.name)!.assign(t);
    t.dispose();
  }
}
