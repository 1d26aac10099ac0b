// selectBackend: which backend runs, the one log line that says why, and loud errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { GpuUnavailableError, selectBackend } from '../worker/backend/select.js';
import { registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from '../worker/backend/wasm_kernels/index.js';

// The native packages are optional: expectations follow what this machine actually has.
const installed = (pkg: string) => {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
};
const hasNode = installed('@tensorflow/tfjs-node');
const hasNodeGpu = installed('@tensorflow/tfjs-node-gpu');

function collect(): { lines: string[]; log: (m: string) => void } {
  const lines: string[] = [];
  return { lines, log: (m) => lines.push(m) };
}

test('auto with a GPU assigned never falls back to the CPU: without tfjs-node-gpu the worker refuses, naming rank and install', async () => {
  const { lines, log } = collect();
  if (hasNodeGpu) {
    // a machine with tfjs-node-gpu installed: it runs on the GPU, or refuses because TensorFlow found none
    try {
      const chosen = await selectBackend('auto', { gpuAssigned: true, log });
      assert.equal(chosen.name, 'tensorflow');
      assert.match(lines[0]!, /^backend: tensorflow on GPU \(CUDA_VISIBLE_DEVICES=/);
    } catch (e) {
      assert.ok(e instanceof GpuUnavailableError, String(e));
    }
    return;
  }
  for (const requested of ['auto', 'tensorflow'] as const) {
    await assert.rejects(
      selectBackend(requested, { gpuAssigned: true, rank: 3, visibleDevices: '2', log }),
      (e: Error) => {
        assert.ok(e instanceof GpuUnavailableError);
        assert.equal(e.rank, 3);
        assert.match(
          e.message,
          /^rank 3: a GPU is assigned \(CUDA_VISIBLE_DEVICES=2\) but @tensorflow\/tfjs-node-gpu is not installed; /,
        );
        assert.match(e.message, /`npm install @tensorflow\/tfjs-node-gpu` \(needs CUDA 11\.2 and cuDNN 8\.1\)/);
        assert.match(e.message, /-o backend=wasm or -o use_gpu=False/);
        return true;
      },
    );
  }
  assert.deepEqual(lines, [], 'no "backend:" line for a backend that does not run');
});

/** A stand-in for tfjs-node-gpu's side effect: registers backend 'tensorflow' whose isUsingGpuDevice is `gpu`. */
function fakeNodeGpu(gpu: boolean, imported: string[]) {
  return async (pkg: string) => {
    imported.push(pkg);
    tf.registerBackend('tensorflow', () =>
      Object.assign(new MathBackendCPU(), { isUsingGpuDevice: gpu, isGPUPackage: true }),
    );
  };
}

test('tfjs-node-gpu loaded but TensorFlow found no GPU: the worker fails naming rank, CUDA_VISIBLE_DEVICES and the likely cause', async () => {
  const { lines, log } = collect();
  const imported: string[] = [];
  try {
    await assert.rejects(
      selectBackend('auto', {
        gpuAssigned: true,
        rank: 1,
        visibleDevices: '5',
        log,
        importPackage: fakeNodeGpu(false, imported),
      }),
      (e: Error) => {
        assert.ok(e instanceof GpuUnavailableError);
        assert.match(
          e.message,
          /^rank 1: @tensorflow\/tfjs-node-gpu loaded but TensorFlow found no usable GPU \(CUDA_VISIBLE_DEVICES=5\)/,
        );
        assert.match(e.message, /libtensorflow 2\.9\.1 needs CUDA 11\.2 and cuDNN 8\.1/);
        return true;
      },
    );
    assert.deepEqual(imported, ['@tensorflow/tfjs-node-gpu'], 'only the GPU package is tried with a GPU assigned');
    assert.deepEqual(lines, []);
  } finally {
    tf.removeBackend('tensorflow');
  }
});

test('tfjs-node-gpu on a GPU: the backend line names the device', async () => {
  const { lines, log } = collect();
  try {
    const chosen = await selectBackend('auto', {
      gpuAssigned: true,
      rank: 0,
      visibleDevices: '1',
      log,
      importPackage: fakeNodeGpu(true, []),
    });
    assert.deepEqual(chosen, {
      name: 'tensorflow',
      reason: 'auto: @tensorflow/tfjs-node-gpu',
      device: 'GPU (CUDA_VISIBLE_DEVICES=1)',
    });
    assert.deepEqual(lines, ['backend: tensorflow on GPU (CUDA_VISIBLE_DEVICES=1) (auto: @tensorflow/tfjs-node-gpu)']);
  } finally {
    tf.removeBackend('tensorflow');
    await selectBackend('cpu', { gpuAssigned: false, log: () => {} });
  }
});

test('auto without a GPU does not try tfjs-node-gpu and says so', async () => {
  const { lines, log } = collect();
  const chosen = await selectBackend('auto', { gpuAssigned: false, log });
  assert.equal(lines.length, 1);
  if (!hasNode) {
    assert.equal(chosen.name, 'wasm');
    assert.match(
      chosen.reason,
      /no GPU assigned, @tensorflow\/tfjs-node-gpu not tried; @tensorflow\/tfjs-node is not installed/,
    );
    assert.equal(lines[0], `backend: wasm on CPU (WebAssembly) (${chosen.reason})`);
    for (const config of WASM_TRAINING_KERNELS)
      assert.equal(
        tf.getKernel(config.kernelName, 'wasm')?.kernelFunc,
        config.kernelFunc,
        `${config.kernelName} registered`,
      );
  }
});

test('asking for tensorflow when it cannot load is an error that says what to install', async () => {
  const { lines, log } = collect();
  if (hasNode || hasNodeGpu) {
    assert.equal((await selectBackend('tensorflow', { gpuAssigned: false, log })).name, 'tensorflow');
    return;
  }
  await assert.rejects(
    selectBackend('tensorflow', { gpuAssigned: false, log }),
    /backend 'tensorflow' cannot load .*npm install @tensorflow\/tfjs-node.*npm install @tensorflow\/tfjs-node-gpu/,
  );
  assert.deepEqual(lines, [], 'no "backend:" line for a backend that does not run');
});

test('explicit cpu and wasm run what was asked for, with a GPU assigned on purpose; unknown names are refused', async () => {
  const { lines, log } = collect();
  assert.equal((await selectBackend('cpu', { gpuAssigned: true, visibleDevices: '0', log })).name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal((await selectBackend('wasm', { gpuAssigned: false, log })).name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(lines, [
    "backend: cpu on CPU (JavaScript, on purpose: a GPU is assigned (CUDA_VISIBLE_DEVICES=0) but backend 'cpu' was asked for) (requested)",
    'backend: wasm on CPU (WebAssembly) (requested)',
  ]);
  await assert.rejects(selectBackend('webgl' as 'wasm', { gpuAssigned: false, log }), /unknown backend 'webgl'/);
});

test('registering the training kernels twice keeps them working', async () => {
  registerWasmTrainingKernels();
  registerWasmTrainingKernels();
  await selectBackend('wasm', { gpuAssigned: false, log: () => {} });
  const x = tf.ones([1, 3, 3, 1]) as tf.Tensor4D,
    w = tf.ones([1, 1, 1, 1]) as tf.Tensor4D;
  const g = tf.grad((f: tf.Tensor) => tf.sum(tf.conv2d(x, f as tf.Tensor4D, 1, 'valid')))(w);
  assert.equal(g.dataSync()[0], 9); // dL/dw = sum of x over the 3x3 map
  tf.dispose([x, w, g]);
});
