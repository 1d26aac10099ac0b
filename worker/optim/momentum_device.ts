/**
 * The Momentum step of optim/momentum.ts on the backend's own device, for every backend but wasm (the native
 * 'tensorflow' backend above all, and 'cpu', which takes the same path in tests):
 *   g' = g + coeff * w;   v = mu * v + g';   w = w - lr * v
 * as tfjs ops on one flat vector of all parameters, in the order and rounding of native/optim/momentum.c (mul,
 * add, mul, add, mul, sub; no fused multiply-add), so the weights agree bit for bit with the wasm path.
 *
 * Why not the wasm module here: it works on host memory, so on a GPU every step would read every weight to the
 * host and write it back, one transfer per parameter (hundreds per step, each a blocking device sync). Here the
 * weights and velocities stay on the device; a step moves the averaged gradients in with one write, and the
 * update is a fixed number of ops whatever the parameter count (plus one split and one assign per parameter,
 * which are device-side views/copies, not transfers).
 */
import * as tf from '@tensorflow/tfjs-core';
import { flatLayout, type FlatSlot } from '../model/flat_params.js';
import type { MomentumOptions, Optimizer } from './momentum.js';

interface Slot extends FlatSlot {
  variable: tf.Variable;
  assigned?: object;
}

export class DeviceMomentum implements Optimizer {
  private readonly slots: Slot[];
  readonly size: number;
  /** host buffer the fused gradients are gathered and all-reduced in (train/grads.ts), one float to spare */
  readonly gradientStorage: Float32Array;
  /** all weights back to back, as last assigned by this optimizer (rebuilt when someone else assigned one) */
  private w: tf.Tensor1D | undefined;
  private v: tf.Tensor1D;

  constructor(
    params: Map<string, tf.Variable>,
    readonly opts: MomentumOptions,
  ) {
    const { slots, size } = flatLayout(params);
    this.slots = slots.map((s) => ({ ...s, variable: params.get(s.name)! }));
    this.size = size;
    this.gradientStorage = new Float32Array(size + 1);
    this.v = tf.keep(tf.zeros([size], 'float32') as tf.Tensor1D);
  }

  apply(grads: Float32Array | Map<string, tf.Tensor>, lr: number): void {
    const g = tf.tidy(() => this.gradientTensor(grads));
    // a parameter assigned since the last step (checkpoint load, rank 0's broadcast): re-gather on the device
    if (!this.w || this.slots.some((s) => s.variable.dataId !== s.assigned)) {
      this.w?.dispose();
      this.w = tf.keep(tf.tidy(() => tf.concat(this.slots.map((s) => tf.reshape(s.variable, [-1]))) as tf.Tensor1D));
    }
    const { momentum, l2Decay } = this.opts;
    const w = this.w;
    const [v, next] = tf.tidy(() => {
      // without decay the gradient is used as it is (as momentum.c: g + 0 * w would turn -0 into +0)
      const gd = l2Decay !== 0 ? tf.add(g, tf.mul(w, l2Decay)) : g;
      const vNew = tf.add(tf.mul(this.v, momentum), gd) as tf.Tensor1D;
      return [vNew, tf.sub(w, tf.mul(vNew, lr)) as tf.Tensor1D];
    });
    g.dispose();
    this.v.dispose();
    w.dispose();
    this.v = tf.keep(v);
    this.w = tf.keep(next);
    tf.tidy(() => {
      const parts = tf.split(
        next,
        this.slots.map((s) => s.size),
      );
      this.slots.forEach((s, i) => {
        s.variable.assign(tf.reshape(parts[i]!, s.shape));
      });
    });
    for (const s of this.slots) s.assigned = s.variable.dataId;
  }

  /** The gradients as one device tensor: one write of the fused host buffer, or a concat of the tensors given. */
  private gradientTensor(grads: Float32Array | Map<string, tf.Tensor>): tf.Tensor1D {
    if (grads instanceof Float32Array) {
      if (grads.length < this.size)
        throw new RangeError(`optimizer: ${grads.length} gradient values for ${this.size} parameters`);
      // a copy: the cpu backend keeps the array it is given, and the buffer is overwritten by the next step
      return tf.tensor1d(grads.slice(0, this.size), 'float32');
    }
    for (const name of grads.keys()) {
      if (!this.slots.some((s) => s.name === name))
        throw new Error(`optimizer: gradient for unknown parameter '${name}'`);
    }
    return tf.concat(
      this.slots.map((s) => {
        const g = grads.get(s.name);
        if (!g) throw new Error(`optimizer: no gradient for parameter '${s.name}'`);
        if (g.size !== s.size)
          throw new Error(
            `optimizer: gradient for parameter '${s.name}' has shape [${g.shape}], the parameter [${s.shape}]`,
          );
        return tf.reshape(g, [-1]);
      }),
    ) as tf.Tensor1D;
  }

  velocityTensors(): Map<string, tf.Tensor> {
    const parts = tf.split(
      this.v,
      this.slots.map((s) => s.size),
    );
    const out = new Map(this.slots.map((s, i) => [s.name, tf.reshape(parts[i]!, s.shape)]));
    tf.dispose(parts);
    return out;
  }

  loadVelocities(saved: Map<string, tf.Tensor>, source = 'checkpoint'): void {
    for (const [name, t] of saved) {
      const s = this.slots.find((x) => x.name === name);
      if (!s) throw new Error(`${source}: optimizer velocity for unknown parameter '${name}'`);
      if (!tf.util.arraysEqual(t.shape, s.shape))
        throw new Error(`${source}: optimizer velocity '${name}' has shape [${t.shape}], the parameter [${s.shape}]`);
    }
    const v = tf.tidy(
      () =>
        tf.concat(
          this.slots.map((s) => {
            const t = saved.get(s.name);
            return t ? tf.reshape(t, [-1]) : tf.zeros([s.size], 'float32');
          }),
        ) as tf.Tensor1D,
    );
    this.v.dispose();
    this.v = tf.keep(v);
  }
}
