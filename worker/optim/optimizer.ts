/**
 * What the training loop and checkpoints use of an optimizer, whichever backend it runs on (momentum.ts on wasm,
 * momentum_device.ts on the others), and the checks both share.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CheckpointError } from '../../shared/errors.js';
import type { FlatParameters } from '../model/flat_params.js';

export interface MomentumOptions {
  momentum: number;
  l2Decay: number;
}

/** What the training loop and checkpoints use of an optimizer, on whichever backend it runs. */
export interface Optimizer {
  /** floats in all parameters together */
  readonly size: number;
  /** the weights and gradients it updates */
  readonly params: FlatParameters;
  /** One step on the gradients as they are in params.gradients (packed there and all-reduced in place). */
  step(lr: number): void;
  /**
   * One step of the parameters in [start, end) only, on the gradients there (ZeRO stage 1: each rank updates the
   * segment whose reduced gradients it holds after a reduce-scatter, and its velocities there). Leaves the new
   * weights in params.weights[start, end) and assigns no variable: the caller all-gathers params.weights and
   * unpacks them (FlatParameters.unpackWeights), so every rank ends with the same bytes.
   */
  stepSegment(lr: number, start: number, end: number): void;
  /**
   * Make the velocities whole after sharded steps: `gather` is an in-place all-gather of a flat array in the
   * parameters' layout (every rank's owned segment to every rank, ProcessGroup.allGatherInPlace). Every rank
   * calls it, before a checkpoint saves velocityTensors.
   */
  gatherVelocities(gather: (flat: Float32Array) => Promise<void>): Promise<void>;
  /**
   * One step on other gradients: the fused values (laid out by model/flat_params.ts; extra trailing values are
   * ignored) or a map from parameter name to gradient tensor (not disposed here), which must name every parameter.
   */
  apply(grads: Float32Array | Map<string, tf.Tensor>, lr: number): void;
  velocityTensors(): Map<string, tf.Tensor>;
  loadVelocities(saved: Map<string, tf.Tensor>, source?: string): void;
}

/** The gradient values of `grads` into `params.gradients`, checked against the parameters' size. */
export function setGradients(params: FlatParameters, grads: Float32Array | Map<string, tf.Tensor>): void {
  if (!(grads instanceof Float32Array)) {
    params.packGradients(grads);
    return;
  }
  checkGradientCount(params.size, grads);
  params.gradients.set(grads.subarray(0, params.size));
}

/** Fused gradient values: at least one per parameter (extra trailing values are ignored). */
export function checkGradientCount(size: number, grads: Float32Array): void {
  if (grads.length < size) throw new RangeError(`optimizer: ${grads.length} gradient values for ${size} parameters`);
}

/** A segment [start, end) of the parameters, checked. */
export function checkSegment(size: number, start: number, end: number): void {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > size)
    throw new RangeError(`optimizer: segment [${start}, ${end}) of ${size} parameters`);
}

/** A velocity checkpoint's tensors checked against the parameters: a name it lacks, a shape that differs. */
export function checkVelocities(params: FlatParameters, saved: Map<string, tf.Tensor>, source: string): void {
  for (const [name, t] of saved) {
    const s = params.slots.find((x) => x.name === name);
    if (!s) throw new CheckpointError(`${source}: optimizer velocity for unknown parameter '${name}'`, source);
    if (!tf.util.arraysEqual(t.shape, s.shape))
      throw new CheckpointError(
        `${source}: optimizer velocity '${name}' has shape [${t.shape}], the parameter [${s.shape}]`,
        source,
      );
  }
}
