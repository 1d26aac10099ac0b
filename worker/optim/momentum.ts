/**
 * PaddleClas's Momentum optimizer with L2 decay (paddle.optimizer.Momentum + L2Decay regularizer):
 *   g' = g + coeff * param          (the L2 term, added to the gradient of every parameter)
 *   v  = momentum * v + g'
 *   param -= lr * v
 *
 * One fused pass over all parameters (native/optim/momentum.c, WebAssembly SIMD) instead of six tfjs ops and two
 * assigns per parameter, whose dispatches were a sizeable part of a small model's step (docs/bench_scaling.md has
 * the figures). The kernel works on the memory of the
 * flat parameters (model/flat_params.ts), which owns the weights and the gradients: it reads the gradients where
 * they were packed and all-reduced and updates the weights there, with no copy in or out. The optimizer owns only
 * its velocities, a region of the same layout in that memory. After the update each parameter is assigned a tensor
 * made from its slice; a parameter that someone else assigned since (a checkpoint load, rank 0's broadcast) is
 * re-read before the next step (FlatParameters.packWeights).
 */
import * as tf from '@tensorflow/tfjs-core';
import { FlatParameters, type FlatRegion, KERNEL_RESERVED_BYTES } from '../model/flat_params.js';
import { MOMENTUM_WASM_BASE64 } from './momentum_wasm.js';
import { DeviceMomentum } from './momentum_device.js';
import { type MomentumOptions, type Optimizer, checkSegment, checkVelocities, setGradients } from './optimizer.js';

export type { MomentumOptions, Optimizer } from './optimizer.js';

/**
 * The optimizer for the active backend: on wasm the fused host pass below (the wasm backend keeps the weights in host
 * memory anyway); on every other backend (tfjs-node's 'tensorflow' above all) the same arithmetic as device
 * ops (momentum_device.ts), so that a step does not read and write every weight across the host-device boundary.
 */
export function createMomentum(params: FlatParameters, opts: MomentumOptions): Optimizer {
  return tf.getBackend() === 'wasm' ? new Momentum(params, opts) : new DeviceMomentum(params, opts);
}

interface MomentumExports {
  __heap_base: WebAssembly.Global;
  momentum_step(w: number, v: number, g: number, n: number, lr: number, mu: number, coeff: number): void;
}

let compiled: WebAssembly.Module | undefined;

export class Momentum implements Optimizer {
  readonly params: FlatParameters;
  readonly size: number;
  private readonly ex: MomentumExports;
  private readonly velocity: FlatRegion;

  /** `params`: the flat parameters to update; a map of variables stands for flat parameters of their own */
  constructor(
    params: FlatParameters | Map<string, tf.Variable>,
    readonly opts: MomentumOptions,
  ) {
    this.params = params instanceof FlatParameters ? params : new FlatParameters(params);
    this.size = this.params.size;
    this.velocity = this.params.allocate();
    compiled ??= new WebAssembly.Module(Buffer.from(MOMENTUM_WASM_BASE64, 'base64'));
    this.ex = new WebAssembly.Instance(compiled, { env: { memory: this.params.memory } })
      .exports as unknown as MomentumExports;
    const heapBase = this.ex.__heap_base.value as number;
    // the kernel's stack and static data lie below __heap_base, in the room the flat parameters leave for them
    if (heapBase > KERNEL_RESERVED_BYTES)
      throw new RangeError(
        `optimizer: the momentum kernel needs ${heapBase} bytes below the flat parameters, ${KERNEL_RESERVED_BYTES} are reserved`,
      );
  }

  step(lr: number): void {
    this.stepSegment(lr, 0, this.size);
    this.params.unpackWeights();
  }

  stepSegment(lr: number, start: number, end: number): void {
    checkSegment(this.size, start, end);
    const p = this.params;
    p.packWeights();
    const { momentum, l2Decay } = this.opts;
    // the kernel is elementwise, so a segment's values are those of the whole pass, bit for bit
    const at = (region: FlatRegion) => region.byteOffset + start * 4;
    this.ex.momentum_step(
      at(p.weightRegion),
      at(this.velocity),
      at(p.gradientRegion),
      end - start,
      lr,
      momentum,
      l2Decay,
    );
  }

  async gatherVelocities(gather: (flat: Float32Array) => Promise<void>): Promise<void> {
    await gather(this.velocity.view);
  }

  apply(grads: Float32Array | Map<string, tf.Tensor>, lr: number): void {
    setGradients(this.params, grads);
    this.step(lr);
  }

  /** The velocities by parameter name, as new tensors (the caller disposes them): what a checkpoint stores. */
  velocityTensors(): Map<string, tf.Tensor> {
    const v = this.velocity.view;
    return new Map(
      this.params.slots.map((s) => [s.name, tf.tensor(v.slice(s.offset, s.offset + s.size), s.shape, 'float32')]),
    );
  }

  /**
   * Restore velocities saved by velocityTensors (the tensors are not disposed here); a parameter the map does not
   * name starts from zero, as it would have before its first step.
   */
  loadVelocities(saved: Map<string, tf.Tensor>, source = 'checkpoint'): void {
    checkVelocities(this.params, saved, source);
    const v = this.velocity.view;
    v.fill(0);
    for (const [name, t] of saved)
      v.set(t.dataSync() as Float32Array, this.params.slots.find((s) => s.name === name)!.offset);
  }
}
