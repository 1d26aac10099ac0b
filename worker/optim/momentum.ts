/**
 * PaddleClas's Momentum optimizer with L2 decay (paddle.optimizer.Momentum + L2Decay regularizer):
 *   g' = g + coeff * param          (the L2 term, added to the gradient of every parameter)
 *   v  = momentum * v + g'
 *   param -= lr * v
 * Velocities are kept per parameter name so that checkpoints can store and restore them.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface MomentumOptions { momentum: number; l2Decay: number }

export class Momentum {
  readonly velocities = new Map<string, tf.Variable>();

  constructor(readonly opts: MomentumOptions) {}

  /** Apply one step; `grads` maps parameter names to gradients (not disposed here). */
  apply(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    const { momentum, l2Decay } = this.opts;
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p) throw new Error(`optimizer: gradient for unknown parameter '${name}'`);
      let v = this.velocities.get(name);
      if (!v) {
        const zeros = tf.zerosLike(p);
        v = tf.variable(zeros, false);
        zeros.dispose();
        this.velocities.set(name, v);
      }
      const vel = v;
      tf.tidy(() => {
        const decayed = l2Decay > 0 ? tf.add(g, tf.mul(p, l2Decay)) : g;
        const next = tf.add(tf.mul(vel, momentum), decayed);
        vel.assign(next);
        p.assign(tf.sub(p, tf.mul(next, lr)));
      });
    }
  }

  dispose(): void {
    for (const v of this.velocities.values()) v.dispose();
    this.velocities.clear();
  }
}
