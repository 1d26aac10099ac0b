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
import { FlatParameters } from '../model/flat_params.js';
import {
  checkGradientCount,
  checkSegment,
  checkVelocities,
  type MomentumOptions,
  type Optimizer,
} from './optimizer.js';

export class DeviceMomentum implements Optimizer {
  readonly params: FlatParameters;
  readonly size: number;
  /** the velocities, all parameters back to back, on the device */
  private v: tf.Tensor1D;

  /** `params`: the flat parameters to update; a map of variables stands for flat parameters of their own */
  constructor(
    params: FlatParameters | Map<string, tf.Variable>,
    readonly opts: MomentumOptions,
  ) {
    this.params = params instanceof FlatParameters ? params : new FlatParameters(params);
    this.size = this.params.size;
    this.v = tf.keep(tf.zeros([this.size], 'float32') as tf.Tensor1D);
  }

  step(lr: number): void {
    // a copy: the cpu backend keeps the array it is given, and the gradients are overwritten by the next step
    this.update(tf.tensor1d(this.params.gradients.slice(), 'float32'), lr);
  }

  apply(grads: Float32Array | Map<string, tf.Tensor>, lr: number): void {
    this.update(
      tf.tidy(() => this.gradientTensor(grads)),
      lr,
    );
  }

  /** One step on `g` (the gradients on the device; disposed here). */
  private update(g: tf.Tensor1D, lr: number): void {
    // the weights as one device tensor, re-gathered by the flat parameters when someone assigned one since
    const w = this.params.deviceWeights();
    const { momentum, l2Decay } = this.opts;
    const [v, next] = tf.tidy(() => {
      // without decay the gradient is used as it is (as momentum.c: g + 0 * w would turn -0 into +0)
      const gd = l2Decay !== 0 ? tf.add(g, tf.mul(w, l2Decay)) : g;
      const vNew = tf.add(tf.mul(this.v, momentum), gd) as tf.Tensor1D;
      return [vNew, tf.sub(w, tf.mul(vNew, lr)) as tf.Tensor1D];
    });
    g.dispose();
    this.v.dispose();
    this.v = tf.keep(v);
    this.params.assignDeviceWeights(next);
  }

  /**
   * The segment's update on the device as in update() (the same ops on slices, so the same bits), its new weights
   * read to the host with ONE transfer for the all-gather; the caller unpacks the gathered weights with one write.
   */
  stepSegment(lr: number, start: number, end: number): void {
    checkSegment(this.size, start, end);
    const p = this.params;
    const n = end - start;
    const g = tf.tensor1d(p.gradients.slice(start, end), 'float32');
    const w = p.deviceWeights();
    const { momentum, l2Decay } = this.opts;
    const [v, next] = tf.tidy(() => {
      const ws = tf.slice(w, start, n);
      const gd = l2Decay !== 0 ? tf.add(g, tf.mul(ws, l2Decay)) : g;
      const vs = tf.add(tf.mul(tf.slice(this.v, start, n), momentum), gd) as tf.Tensor1D;
      const parts = [tf.slice(this.v, 0, start), vs, tf.slice(this.v, end, this.size - end)];
      return [tf.concat(parts) as tf.Tensor1D, tf.sub(ws, tf.mul(vs, lr)) as tf.Tensor1D];
    });
    g.dispose();
    this.v.dispose();
    this.v = tf.keep(v);
    try {
      p.weights.set(next.dataSync() as Float32Array, start);
    } finally {
      next.dispose();
    }
  }

  async gatherVelocities(gather: (flat: Float32Array) => Promise<void>): Promise<void> {
    const host = this.v.dataSync().slice() as Float32Array;
    await gather(host);
    this.v.dispose();
    this.v = tf.keep(tf.tensor1d(host, 'float32'));
  }

  /** The gradients as one device tensor: one write of a fused host array, or a concat of the tensors given. */
  private gradientTensor(grads: Float32Array | Map<string, tf.Tensor>): tf.Tensor1D {
    if (grads instanceof Float32Array) {
      checkGradientCount(this.size, grads);
      // a copy: the cpu backend keeps the array it is given, and the caller may reuse its buffer
      return tf.tensor1d(grads.slice(0, this.size), 'float32');
    }
    this.params.checkGradients(grads);
    return tf.concat(this.params.slots.map((s) => tf.reshape(grads.get(s.name)!, [-1]))) as tf.Tensor1D;
  }

  velocityTensors(): Map<string, tf.Tensor> {
    const slots = this.params.slots;
    const parts = tf.split(
      this.v,
      slots.map((s) => s.size),
    );
    const out = new Map(slots.map((s, i) => [s.name, tf.reshape(parts[i]!, s.shape)]));
    tf.dispose(parts);
    return out;
  }

  loadVelocities(saved: Map<string, tf.Tensor>, source = 'checkpoint'): void {
    checkVelocities(this.params, saved, source);
    const v = tf.tidy(
      () =>
        tf.concat(
          this.params.slots.map((s) => {
            const t = saved.get(s.name);
            return t ? tf.reshape(t, [-1]) : tf.zeros([s.size], 'float32');
          }),
        ) as tf.Tensor1D,
    );
    this.v.dispose();
    this.v = tf.keep(v);
  }
}
