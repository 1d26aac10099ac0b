/**
 * Host-device traffic of a training step on the generic path (every backend but wasm; 'tensorflow' on a GPU is
 * where it matters: each read is a blocking device-to-host copy). Counted on 'cpu' at tfjs's engine, where every
 * backend's reads (dataSync/data) and writes (a tensor made from host values) pass: a step reads the loss, the
 * gradients as ONE fused buffer and the top-k indices, and writes the images, the labels, the dropout mask, a
 * tf.ones([batch]) of the loss's mean gradient and the averaged gradients as one buffer; BN statistics and the
 * optimizer's update stay on the device. (Scalars made from JS numbers, e.g. BN's epsilon, are written too: 4-byte
 * constants, not counted here.) The counts
 * do not depend on the number of parameters (HarDNet39ds: 3.5 M at 1000 classes, 68: 17.6 M; at 10 classes here).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from './helpers/backend.js';
import { withShapeOnlyConvolutions } from './helpers/tfjs_node.js';
import { HarDNet } from '../worker/model/hardnet.js';
import { computeGradients } from '../worker/train/step.js';
import { FlatParameters } from '../worker/model/flat_params.js';
import { createMomentum } from '../worker/optim/momentum.js';
import { topkCorrect } from '../worker/train/metrics.js';

before(async () => {
  await useBackend('cpu');
});

interface Traffic {
  reads: number;
  writes: number;
  scalarWrites: number;
}

/** Counts reads and writes through tfjs's engine while fn runs. */
async function count(fn: () => Promise<void>): Promise<Traffic> {
  const engine = tf.engine() as unknown as Record<'readSync' | 'read' | 'makeTensor', (...a: unknown[]) => unknown>;
  const saved = { readSync: engine.readSync, read: engine.read, makeTensor: engine.makeTensor };
  const t: Traffic = { reads: 0, writes: 0, scalarWrites: 0 };
  engine.readSync = function (...a) {
    t.reads++;
    return saved.readSync.apply(this, a);
  };
  engine.read = function (...a) {
    t.reads++;
    return saved.read.apply(this, a);
  };
  engine.makeTensor = function (...a) {
    const values = a[0] as ArrayLike<unknown> | number;
    if (typeof values === 'number' || (values as ArrayLike<unknown>).length === 1) t.scalarWrites++;
    else t.writes++;
    return saved.makeTensor.apply(this, a);
  };
  try {
    await fn();
  } finally {
    Object.assign(engine, saved);
  }
  return t;
}

/** Steps as train.ts runs them (without the all-reduce, which works on the host buffer in place). */
async function stepTraffic(name: string): Promise<{ traffic: Traffic[]; params: number }> {
  const model = new HarDNet(name, 10, 2);
  const parameters = new FlatParameters(model.weights);
  const opt = createMomentum(parameters, { momentum: 0.9, l2Decay: 5e-5 });
  const images = new Float32Array(2 * 32 * 32 * 3).map((_, i) => Math.sin(i));
  const labels = Int32Array.from([1, 4]);
  const traffic: Traffic[] = [];
  for (let i = 0; i < 3; i++) {
    traffic.push(
      await count(async () => {
        const x = tf.tensor4d(images, [2, 32, 32, 3]);
        const y = tf.tensor1d(labels, 'int32');
        const r = computeGradients(model, x, y, { labelSmoothing: 0.1, seed: i });
        await r.loss.data();
        parameters.packGradients(r.grads);
        model.updateBatchNormStats(r.batchStats);
        await topkCorrect(r.logits, labels, 5);
        opt.step(0.01);
        tf.dispose([x, y, r.loss, r.logits, ...r.grads.values()]);
      }),
    );
  }
  const params = opt.size;
  model.dispose();
  return { traffic, params };
}

test('a generic-path step reads 3 buffers and writes 5, whatever the parameter count; BN statistics and the update stay on the device', async (t) => {
  // the convolutions' values do not change what is transferred (and the cpu backend's are slow)
  const small = await withShapeOnlyConvolutions(() => stepTraffic('HarDNet39ds'));
  const large = await withShapeOnlyConvolutions(() => stepTraffic('HarDNet68'));
  assert.ok(large.params > 3 * small.params, `${large.params} vs ${small.params} parameters`);
  for (const [name, r] of [
    ['HarDNet39ds', small],
    ['HarDNet68', large],
  ] as const) {
    t.diagnostic(`${name} (${r.params} parameters): ${JSON.stringify(r.traffic)}`);
    // from the first step on (the optimizer gathers the weights on the device, not through the host)
    for (const s of r.traffic) {
      assert.equal(s.reads, 3, `${name}: reads per step (loss, fused gradients, top-k indices): ${JSON.stringify(s)}`);
      // tf.dropout draws its mask on the host; tfjs's gradient of the loss's mean multiplies by tf.ones([batch])
      assert.equal(
        s.writes,
        5,
        `${name}: non-scalar writes per step (images, labels, head dropout mask, ones of the loss mean, averaged gradients): ${JSON.stringify(s)}`,
      );
    }
  }
});

test('the wasm-path optimizer is not used on the generic path, and the generic path leaks no tensors', async () => {
  const model = new HarDNet('HarDNet39ds', 10, 3);
  const parameters = new FlatParameters(model.weights);
  const opt = createMomentum(parameters, { momentum: 0.9, l2Decay: 5e-5 });
  assert.equal(opt.constructor.name, 'DeviceMomentum');
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.tensor1d([0, 3], 'int32');
  const counts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = computeGradients(model, x, y, { seed: i, bnGroupSize: 1 });
    parameters.packGradients(r.grads);
    model.updateBatchNormStats(r.batchStats);
    opt.step(0.01);
    tf.dispose([r.loss, r.logits, ...r.grads.values()]);
    counts.push(tf.memory().numTensors);
  }
  assert.equal(counts[1], counts[0], `tensors after each step: ${counts}`);
  assert.equal(counts[2], counts[0], `tensors after each step: ${counts}`);
  tf.dispose([x, y]);
  model.dispose();
});
