import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { HarDNet } from '../worker/model/hardnet.js';
import { Momentum } from '../worker/optim/momentum.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, type TrainState } from '../worker/checkpoint/checkpoint.js';
import { useBackend } from './helpers/backend.js';

before(async () => {
  await useBackend('wasm');
});

const state = (epoch: number): TrainState => ({
  epoch,
  iteration: 10 * epoch,
  bestTop1: 0.5,
  bestEpoch: epoch,
  model: 'HarDNet39ds',
  classesNum: 10,
});

test('a save killed between its two renames leaves <dir>.old, which loading and --resume auto fall back to', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-'));
  const model = new HarDNet('HarDNet39ds', 10, 0);
  const opt = new Momentum(model.weights, { momentum: 0.9, l2Decay: 0 });
  await saveCheckpoint(path.join(root, '3'), model, opt, state(3));
  assert.equal(latestCheckpoint(root), path.join(root, '3'));
  await saveCheckpoint(path.join(root, '3'), model, opt, state(3)); // replacing leaves no .old or temporary copy
  assert.deepEqual(fs.readdirSync(root).sort(), ['3']);
  // what a SIGKILL right after `rename(dir, dir.old)` leaves behind, plus a stale temporary copy
  fs.renameSync(path.join(root, '3'), path.join(root, '3.old'));
  fs.mkdirSync(path.join(root, '.3.tmp-dead'));
  assert.equal(latestCheckpoint(root), path.join(root, '3.old'));
  const other = new HarDNet('HarDNet39ds', 10, 1);
  assert.equal(loadCheckpoint(path.join(root, '3'), other, opt).epoch, 3);
  assert.deepEqual(
    await other.weights.get('base.0.conv.weight')!.data(),
    await model.weights.get('base.0.conv.weight')!.data(),
  );
  // the next save of that epoch cleans up and is whole again
  await saveCheckpoint(path.join(root, '3'), model, opt, state(3));
  assert.deepEqual(fs.readdirSync(root).sort(), ['3']);
  assert.throws(() => loadCheckpoint(path.join(root, '7'), other), /checkpoint '.*7' does not exist or is incomplete/);
  model.dispose();
  other.dispose();
});

test('creating and disposing a model and its optimizer state returns every tensor', async () => {
  const cycle = () => {
    const model = new HarDNet('HarDNet39ds', 10, 0);
    const opt = new Momentum(model.weights, { momentum: 0.9, l2Decay: 1e-4 });
    const grads = new Map([...model.weights].map(([n, v]) => [n, tf.onesLike(v)]));
    opt.apply(grads, 0.1);
    tf.dispose([...grads.values()]);
    model.dispose();
  };
  cycle();
  const before = tf.memory().numTensors;
  cycle();
  assert.equal(tf.memory().numTensors, before);
});
