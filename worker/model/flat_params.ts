/**
 * Parameters as one flat Float32Array: each parameter's values back to back, in the order of the map (the
 * model's state_dict order). The fused gradient buffer (train/grads.ts) and the optimizer (optim/momentum.ts)
 * share this layout, so the all-reduced gradients go to the optimizer as they are.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface FlatSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

export function flatLayout(params: Map<string, tf.Tensor>): { slots: FlatSlot[]; size: number } {
  const slots: FlatSlot[] = [];
  let offset = 0;
  for (const [name, t] of params) {
    slots.push({ name, shape: t.shape, offset, size: t.size });
    offset += t.size;
  }
  return { slots, size: offset };
}

/**
 * Assign each parameter a new tensor made from its slice of `flat` (tfjs tensors are immutable). On wasm each
 * slice is copied into the heap; on the other backends (tfjs-node above all) the whole buffer goes over in ONE
 * write and is split on the device, so the number of host-to-device transfers does not grow with the parameters.
 */
export function assignFromFlat(flat: Float32Array, slots: FlatSlot[], params: Map<string, tf.Variable>): void {
  if (tf.getBackend() !== 'wasm') {
    const size = slots.reduce((a, s) => Math.max(a, s.offset + s.size), 0);
    tf.tidy(() => {
      // a copy: the cpu backend keeps the array it is given, and the caller reuses its buffer
      const all = tf.tensor1d(flat.slice(0, size), 'float32');
      for (const s of slots) params.get(s.name)!.assign(tf.reshape(tf.slice(all, s.offset, s.size), s.shape));
    });
    return;
  }
  for (const s of slots) {
    const t = tf.tensor(flat.subarray(s.offset, s.offset + s.size), s.shape, 'float32');
    params.get(s.name)!.assign(t);
    t.dispose();
  }
}
