/**
 * Gradients as one fused Float32Array: one all-reduce per step over every parameter, as the collectives
 * expect; the optimizer (optim/momentum.ts) reads the same layout.
 */
import * as tf from '@tensorflow/tfjs-core';
import { copyInto } from '../backend/read.js';
import { assignFromFlat, flatLayout, type FlatSlot } from '../model/flat_params.js';

export class GradientBuffer {
  /** the gradients, then one control slot (see `stopFlag`) */
  readonly flat: Float32Array;
  private readonly layout: FlatSlot[];

  /** `storage`: where to keep the values (the optimizer's Momentum.gradientStorage, so it reads them in place) */
  constructor(params: Map<string, tf.Variable>, storage?: Float32Array) {
    const { slots, size } = flatLayout(params);
    this.layout = slots;
    if (storage && storage.length < size + 1)
      throw new RangeError(
        `gradient buffer: storage of ${storage.length} floats for ${size} parameters and the stop flag`,
      );
    this.flat = storage ? storage.subarray(0, size + 1) : new Float32Array(size + 1);
    this.controlSlot = size;
  }

  private readonly controlSlot: number;

  /**
   * A stop request rides in the same all-reduce as the gradients: a worker asked to stop sets it before the
   * reduction, and after it every worker sees a non-zero value, so all stop after the same step instead of one
   * leaving the others waiting in the next collective.
   */
  get stopFlag(): boolean {
    return this.flat[this.controlSlot] !== 0;
  }
  set stopFlag(v: boolean) {
    this.flat[this.controlSlot] = v ? 1 : 0;
  }

  /**
   * Copy the gradients in (the tensors are not disposed). On wasm each tensor is read from the module's heap
   * (read.ts); on every other backend they are concatenated on the device and read with ONE transfer: on a GPU each
   * read is a blocking device-to-host copy, and one per parameter would be hundreds per step.
   */
  gather(grads: Map<string, tf.Tensor>): void {
    for (const l of this.layout) {
      const g = grads.get(l.name);
      if (!g) throw new Error(`no gradient for parameter '${l.name}'`);
      // a wrong size would spill into the next parameter's slot (or leave stale values) without any other sign
      if (g.size !== l.size)
        throw new Error(`gradient for parameter '${l.name}' has shape [${g.shape}], the parameter [${l.shape}]`);
    }
    if (tf.getBackend() === 'wasm') {
      for (const l of this.layout) copyInto(grads.get(l.name)!, this.flat, l.offset);
      return;
    }
    const fused = tf.tidy(() => tf.concat(this.layout.map((l) => tf.reshape(grads.get(l.name)!, [-1]))));
    try {
      copyInto(fused, this.flat, 0);
    } finally {
      fused.dispose();
    }
  }

  /** Fill from the model's weights (for broadcasting rank 0's initial weights). */
  static weightsOf(params: Map<string, tf.Variable>): GradientBuffer {
    const b = new GradientBuffer(params);
    b.gather(params);
    return b;
  }

  /** Assign the buffer's contents back to the parameters. */
  assignTo(params: Map<string, tf.Variable>): void {
    assignFromFlat(this.flat, this.layout, params);
  }
}
