// selectBackend: which backend runs, the one log line that says why, and loud errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../worker/backend/select.js';
import { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from '../worker/backend/wasm_kernels/index.js';

// The native packages are optional: expectations follow what this machine actually has.
const installed = (pkg: string) => { try { createRequire(import.meta.url).resolve(pkg); return true; } catch { return false; } };
const hasNode = installed('@tensorflow/tfjs-node');
const hasNodeGpu = installed('@tensorflow/tfjs-node-gpu');

function collect(): { lines: string[]; log: (m: string) => void } {
  const lines: string[] = [];
  return { lines, log: (m) => lines.push(m) };
}

test('auto with a GPU assigned: one log line naming the backend and each fallback reason', async () => {
  const { lines, log } = collect();
  const chosen = await selectBackend('auto', { gpuAssigned: true, log });
  assert.equal(lines.length, 1);
  assert.equal(lines[0], `backend: ${chosen.name} (${chosen.reason})`);
  assert.equal(tf.getBackend(), chosen.name);
  if (!hasNode && !hasNodeGpu) {
    assert.equal(chosen.name, 'wasm');
    assert.equal(chosen.reason, '@tensorflow/tfjs-node-gpu is not installed; @tensorflow/tfjs-node is not installed');
    for (const config of WASM_TRAINING_KERNELS)
      assert.equal(tf.getKernel(config.kernelName, 'wasm')?.kernelFunc, config.kernelFunc, `${config.kernelName} registered`);
  } else {
    assert.equal(chosen.name, 'tensorflow');
  }
});

test('auto without a GPU does not try tfjs-node-gpu and says so', async () => {
  const { lines, log } = collect();
  const chosen = await selectBackend('auto', { gpuAssigned: false, log });
  assert.equal(lines.length, 1);
  if (!hasNode) {
    assert.equal(chosen.name, 'wasm');
    assert.match(chosen.reason, /no GPU assigned, @tensorflow\/tfjs-node-gpu not tried; @tensorflow\/tfjs-node is not installed/);
  }
});

test('asking for tensorflow when it cannot load is an error that says what to install', async () => {
  const { lines, log } = collect();
  if (hasNode || hasNodeGpu) {
    assert.equal((await selectBackend('tensorflow', { gpuAssigned: false, log })).name, 'tensorflow');
    return;
  }
  await assert.rejects(selectBackend('tensorflow', { gpuAssigned: false, log }),
    /backend 'tensorflow' cannot load .*npm install @tensorflow\/tfjs-node.*npm install @tensorflow\/tfjs-node-gpu/);
  assert.deepEqual(lines, [], 'no "backend:" line for a backend that does not run');
});

test('explicit cpu and wasm run what was asked for; unknown names are refused', async () => {
  const { lines, log } = collect();
  assert.deepEqual(await selectBackend('cpu', { gpuAssigned: true, log }), { name: 'cpu', reason: 'requested' });
  assert.equal(tf.getBackend(), 'cpu');
  assert.deepEqual(await selectBackend('wasm', { gpuAssigned: true, log }), { name: 'wasm', reason: 'requested' });
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(lines, ['backend: cpu (requested)', 'backend: wasm (requested)']);
  await assert.rejects(selectBackend('webgl' as 'wasm', { gpuAssigned: false, log }), /unknown backend 'webgl'/);
});

test('registering the training kernels twice keeps them working', async () => {
  registerWasmTrainingKernels();
  registerWasmTrainingKernels();
  await selectBackend('wasm', { gpuAssigned: false, log: () => {} });
  const x = tf.ones([1, 3, 3, 1]) as tf.Tensor4D, w = tf.ones([1, 1, 1, 1]) as tf.Tensor4D;
  const g = tf.grad((f: tf.Tensor) => tf.sum(tf.conv2d(x, f as tf.Tensor4D, 1, 'valid')))(w);
  assert.equal(g.dataSync()[0], 9); // dL/dw = sum of x over the 3x3 map
  tf.dispose([x, w, g]);
});
