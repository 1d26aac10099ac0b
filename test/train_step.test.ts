import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { HarDNet } from '../worker/model/hardnet.js';
import { computeGradients } from '../worker/train/step.js';
import { GradientBuffer } from '../worker/train/grads.js';
import { Momentum } from '../worker/optim/momentum.js';
import { topkCorrect } from '../worker/train/metrics.js';
import { useBackend } from './helpers/backend.js';

before(async () => { await useBackend('wasm'); });

/** One whole training step as the loop runs it: gradients, fused buffer, optimizer, BN statistics, metrics. */
async function step(model: HarDNet, opt: Momentum, buf: GradientBuffer, i: number): Promise<number> {
  const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', i) as tf.Tensor4D;
  const labels = Int32Array.from([0, 1, 2, 3]);
  const y = tf.tensor1d(labels, 'int32');
  const r = computeGradients(model, x, y, { labelSmoothing: 0.1, seed: i });
  const [loss] = await r.loss.data();
  await buf.gather(r.grads);
  const reduced = buf.scatter();
  opt.apply(model.weights, reduced, 0.01);
  model.updateBatchNormStats(r.batchStats);
  await topkCorrect(r.logits, labels, 5);
  tf.dispose([x, y, r.loss, r.logits, ...r.grads.values(), ...reduced.values()]);
  return loss;
}

test('a training step leaks no tensors: tf.memory().numTensors is flat from step to step', async () => {
  const model = new HarDNet('HarDNet39ds', 10, 0);
  const opt = new Momentum({ momentum: 0.9, l2Decay: 1e-4 });
  const buf = new GradientBuffer(model.weights);
  await step(model, opt, buf, 0); // first step creates the velocities and cached constants
  const counts: number[] = [];
  for (let i = 1; i <= 4; i++) {
    const loss = await step(model, opt, buf, i);
    assert.ok(Number.isFinite(loss));
    counts.push(tf.memory().numTensors);
  }
  assert.deepEqual(counts, new Array(counts.length).fill(counts[0]), `tensor counts per step: ${counts.join(', ')}`);
  // and eval forward passes leak nothing either
  const input = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) tf.dispose(model.forward(input, { training: false }));
  assert.equal(tf.memory().numTensors, before, 'eval forward leaked');
  input.dispose();
  opt.dispose();
  model.dispose();
});

test('the optimizer follows PaddleClas Momentum with L2 decay exactly', async () => {
  const p = tf.variable(tf.tensor1d([1, -2]));
  const opt = new Momentum({ momentum: 0.9, l2Decay: 0.1 });
  const params = new Map([['w', p]]);
  const g = tf.tensor1d([0.5, 0.5]);
  opt.apply(params, new Map([['w', g]]), 0.1);
  // g' = g + 0.1 w = [0.6, 0.3]; v = g'; w -= 0.1 v
  assert.deepEqual(Array.from(await p.data()).map((v) => +v.toFixed(6)), [0.94, -2.03]);
  opt.apply(params, new Map([['w', g]]), 0.1);
  // g' = [0.5 + 0.094, 0.5 - 0.203] = [0.594, 0.297]; v = 0.9 [0.6, 0.3] + g' = [1.134, 0.567]
  assert.deepEqual(Array.from(await p.data()).map((v) => +v.toFixed(5)), [+(0.94 - 0.1134).toFixed(5), +(-2.03 - 0.0567).toFixed(5)]);
  tf.dispose([p, g]);
  opt.dispose();
});
