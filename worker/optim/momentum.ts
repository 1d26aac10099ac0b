/**
 * PaddleClas's Momentum optimizer with L2 decay (paddle.optimizer.Momentum + L2Decay regularizer):
 *   g' = g + coeff * param          (the L2 term, added to the gradient of every parameter)
 *   v  = momentum * v + g'
 *   param -= lr * v
 *
 * One fused pass over all parameters (native/optim/momentum.c, WebAssembly SIMD) instead of six tfjs ops and two
 * assigns per parameter, which cost ~20 ms of a 165 ms HarDNet39ds step. The optimizer keeps a copy of the weights
 * and the velocities in the module's memory between steps, laid out like the fused gradient buffer (parameters in
 * the order of the map given to the constructor); after the update each parameter is assigned a tensor made from
 * its slice. A parameter that someone else assigned since (a checkpoint load, rank 0's broadcast) has a new
 * dataId: the optimizer notices and re-reads it before the next step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MOMENTUM_WASM_BASE64 } from './momentum_wasm.js';
import { assignFromFlat, flatLayout, type FlatSlot } from '../model/flat_params.js';
import { DeviceMomentum } from './momentum_device.js';

export interface MomentumOptions {
  momentum: number;
  l2Decay: number;
}

/** What the training loop and checkpoints use of an optimizer, on whichever backend it runs. */
export interface Optimizer {
  /** floats in all parameters together */
  readonly size: number;
  /** where the fused gradients are gathered and all-reduced (train/grads.ts), with one float to spare */
  readonly gradientStorage: Float32Array;
  apply(grads: Float32Array | Map<string, tf.Tensor>, lr: number): void;
  velocityTensors(): Map<string, tf.Tensor>;
  loadVelocities(saved: Map<string, tf.Tensor>, source?: string): void;
}

/**
 * The optimizer for the active backend: on wasm the fused host pass below (the weights live in the module's
 * heap either way); on every other backend (tfjs-node's 'tensorflow' above all) the same arithmetic as device
 * ops (momentum_device.ts), so that a step does not read and write every weight across the host-device boundary.
 */
export function createMomentum(params: Map<string, tf.Variable>, opts: MomentumOptions): Optimizer {
  return tf.getBackend() === 'wasm' ? new Momentum(params, opts) : new DeviceMomentum(params, opts);
}

interface MomentumExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  momentum_step(w: number, v: number, g: number, n: number, lr: number, mu: number, coeff: number): void;
}

interface Slot extends FlatSlot {
  variable: tf.Variable;
  /** the dataId this optimizer last assigned to the variable: while it is unchanged, the copy here is current */
  assigned?: object;
}

let compiled: WebAssembly.Module | undefined;

export class Momentum implements Optimizer {
  /** parameters in the order of the fused buffers (model/flat_params.ts) */
  private readonly slots: Slot[];
  /** floats in all parameters together */
  readonly size: number;
  private readonly ex: MomentumExports;
  private readonly at: { w: number; v: number; g: number };
  private readonly w: Float32Array;
  private readonly v: Float32Array;
  private readonly g: Float32Array;

  constructor(
    private readonly params: Map<string, tf.Variable>,
    readonly opts: MomentumOptions,
  ) {
    const { slots, size } = flatLayout(params);
    this.slots = slots.map((s) => ({ ...s, variable: params.get(s.name)! }));
    this.size = size;
    compiled ??= new WebAssembly.Module(Buffer.from(MOMENTUM_WASM_BASE64, 'base64'));
    this.ex = new WebAssembly.Instance(compiled, {}).exports as unknown as MomentumExports;
    // room for one float more than the parameters in each region: the gradient region doubles as the fused
    // gradient buffer (gradientStorage), whose last value is the stop flag
    const bytes = Math.ceil(((size + 1) * 4) / 64) * 64;
    const base = Math.ceil((this.ex.__heap_base.value as number) / 64) * 64;
    this.at = { w: base, v: base + bytes, g: base + 2 * bytes };
    const end = base + 3 * bytes;
    const have = this.ex.memory.buffer.byteLength;
    // grown once, here: views on the module's memory stay valid because it never grows again
    if (end > have) this.ex.memory.grow(Math.ceil((end - have) / 65536));
    const buf = this.ex.memory.buffer;
    this.w = new Float32Array(buf, this.at.w, size);
    this.v = new Float32Array(buf, this.at.v, size);
    this.gradientStorage = new Float32Array(buf, this.at.g, size + 1);
    this.g = this.gradientStorage.subarray(0, size);
  }

  /**
   * The optimizer's own gradient input, with one float to spare: a GradientBuffer built on it (train/grads.ts) is
   * gathered and all-reduced in place, and apply() then reads it where it is instead of copying 4 bytes per
   * parameter into this module first (memory traffic that two workers pay at the same moment).
   */
  readonly gradientStorage: Float32Array;

  /**
   * One step. `grads` is either the fused gradients (laid out by model/flat_params.ts, as GradientBuffer holds
   * them; extra trailing values are ignored) or a map from parameter name to gradient
   * tensor (not disposed here), which must name every parameter.
   */
  apply(grads: Float32Array | Map<string, tf.Tensor>, lr: number): void {
    if (grads instanceof Float32Array) {
      if (grads.length < this.size)
        throw new RangeError(`optimizer: ${grads.length} gradient values for ${this.size} parameters`);
      const inPlace = grads.buffer === this.g.buffer && grads.byteOffset === this.g.byteOffset;
      if (!inPlace) this.g.set(grads.subarray(0, this.size));
    } else {
      for (const name of grads.keys()) {
        if (!this.slots.some((s) => s.name === name))
          throw new Error(`optimizer: gradient for unknown parameter '${name}'`);
      }
      for (const s of this.slots) {
        const g = grads.get(s.name);
        if (!g) throw new Error(`optimizer: no gradient for parameter '${s.name}'`);
        if (g.size !== s.size)
          throw new Error(
            `optimizer: gradient for parameter '${s.name}' has shape [${g.shape}], the parameter [${s.shape}]`,
          );
        this.g.set(g.dataSync() as Float32Array, s.offset);
      }
    }
    for (const s of this.slots) {
      if (s.variable.dataId !== s.assigned) this.w.set(s.variable.dataSync() as Float32Array, s.offset);
    }
    const { momentum, l2Decay } = this.opts;
    this.ex.momentum_step(this.at.w, this.at.v, this.at.g, this.size, lr, momentum, l2Decay);
    assignFromFlat(this.w, this.slots, this.params);
    for (const s of this.slots) s.assigned = s.variable.dataId;
  }

  /** The velocities by parameter name, as new tensors (the caller disposes them): what a checkpoint stores. */
  velocityTensors(): Map<string, tf.Tensor> {
    return new Map(
      this.slots.map((s) => [s.name, tf.tensor(this.v.slice(s.offset, s.offset + s.size), s.shape, 'float32')]),
    );
  }

  /**
   * Restore velocities saved by velocityTensors (the tensors are not disposed here); a parameter the map does not
   * name starts from zero, as it would have before its first step.
   */
  loadVelocities(saved: Map<string, tf.Tensor>, source = 'checkpoint'): void {
    this.v.fill(0);
    for (const [name, t] of saved) {
      const s = this.slots.find((x) => x.name === name);
      if (!s) throw new Error(`${source}: optimizer velocity for unknown parameter '${name}'`);
      if (!tf.util.arraysEqual(t.shape, s.shape))
        throw new Error(`${source}: optimizer velocity '${name}' has shape [${t.shape}], the parameter [${s.shape}]`);
      this.v.set(t.dataSync() as Float32Array, s.offset);
    }
  }
}
