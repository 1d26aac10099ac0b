/**
 * Gradients as one fused Float32Array: one all-reduce per step over every parameter, as the collectives
 * expect; the optimizer (optim/momentum.ts) reads the same layout.
 */
import * as tf from '@tensorflow/tfjs-core';
import { copyInto } from '../backend/read.js';

export class GradientBuffer {
  /** the gradients, then one control slot (see `stopFlag`) */
  readonly flat: Float32Array;
  private readonly layout: { name: string; shape: number[]; offset: number; size: number }[] = [];

  constructor(params: Map<string, tf.Variable>) {
    let offset = 0;
    for (const [name, v] of params) {
      this.layout.push({ name, shape: v.shape, offset, size: v.size });
      offset += v.size;
    }
    this.flat = new Float32Array(offset + 1);
    this.controlSlot = offset;
  }

  private readonly controlSlot: number;

  /**
   * A stop request rides in the same all-reduce as the gradients: a worker asked to stop sets it before the
   * reduction, and after it every worker sees a non-zero value, so all stop after the same step instead of one
   * leaving the others waiting in the next collective.
   */
  get stopFlag(): boolean { return this.flat[this.controlSlot] !== 0; }
  set stopFlag(v: boolean) { this.flat[this.controlSlot] = v ? 1 : 0; }

  /** Copy the gradients in (the tensors are not disposed). */
  gather(grads: Map<string, tf.Tensor>): void {
    for (const l of this.layout) {
      const g = grads.get(l.name);
      if (!g) throw new Error(`no gradient for parameter '${l.name}'`);
      copyInto(g, this.flat, l.offset);
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
    for (const l of this.layout) {
      const t = tf.tensor(this.flat.subarray(l.offset, l.offset + l.size), l.shape);
      params.get(l.name)!.assign(t);
      t.dispose();
    }
  }
}
