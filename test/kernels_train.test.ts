// The memory-bound training kernels for wasm (fused BatchNorm[+ReLU6], Concat/SplitV, MaxPoolGrad, Identity;
// worker/backend/wasm_kernels) against tfjs-backend-cpu running the tensor-op versions: same inputs, both backends.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { selectBackend } from '../worker/backend/select.js';
import { assertClose, onBoth } from './helpers/wasm_vs_cpu.js';
import { batchNormTrain } from '../worker/model/batchnorm.js';
import { BATCH_NORM_GRAD, BATCH_NORM_TRAIN } from '../worker/backend/wasm_kernels/batchnorm_train.js';

before(async () => {
  await selectBackend('wasm', { gpuAssigned: false, log: () => {} });
});

const input = (shape: number[], seed: number, mean = 0, std = 1) => tf.randomNormal(shape, mean, std, 'float32', seed);

describe('BatchNorm training kernels vs the tensor-op version on cpu', () => {
  // 30 and 5 channels exercise the scalar channel tails; 64 rows per block in the reductions, so 2x9x9 = 162
  // rows cross block boundaries
  const cases = [
    { shape: [2, 9, 9, 30], relu6: true },
    { shape: [2, 9, 9, 30], relu6: false },
    { shape: [3, 4, 5, 5], relu6: true },
    { shape: [1, 8, 8, 64], relu6: false },
  ];
  for (const { shape, relu6 } of cases) {
    test(`forward and gradients, x [${shape}], relu6 ${relu6}`, () => {
      const c = shape[3]!;
      const [wasm, cpu] = onBoth(() => {
        // mean 2, std 3: the centring matters; gamma and beta spread z across ReLU6's 0 and 6
        const x = input(shape, 1, 2, 3) as tf.Tensor4D,
          gamma = input([c], 2, 1, 2) as tf.Tensor1D,
          beta = input([c], 3, 1, 3) as tf.Tensor1D;
        const weights = input(shape, 4); // a non-uniform dy
        const moments: tf.Tensor[] = [];
        const f = (xx: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
          tf.sum(
            tf.mul(
              batchNormTrain(
                xx as tf.Tensor4D,
                g as tf.Tensor1D,
                b as tf.Tensor1D,
                1e-5,
                (m) => moments.push(m.mean, m.variance),
                relu6,
              ),
              weights,
            ),
          );
        const y = batchNormTrain(x, gamma, beta, 1e-5, undefined, relu6);
        const grads = tf.grads(f)([x, gamma, beta]);
        return [y, ...grads, ...moments];
      });
      ['y', 'dx', 'dgamma', 'dbeta', 'mean', 'variance'].forEach((name, i) => {
        assertClose(wasm[i]!, cpu[i]!, name, name === 'dx' ? 1e-4 : 1e-5);
      });
    });
  }

  test("ReLU6's gradient passes at z = 6 and stops at z = 0, as tfjs's Relu6 gradient does", () => {
    // gamma 0 makes z = beta exactly; then dbeta = sum of the gradient that the ReLU6 mask lets through
    const [wasm, cpu] = onBoth(() => {
      const x = input([2, 3, 3, 6], 5) as tf.Tensor4D,
        gamma = tf.zeros([6]) as tf.Tensor1D;
      const beta = tf.tensor1d([6, 0, 3, 6, 0, 7]),
        dy = input([2, 3, 3, 6], 6);
      const f = (b: tf.Tensor) => tf.sum(tf.mul(batchNormTrain(x, gamma, b as tf.Tensor1D, 1e-5, undefined, true), dy));
      return [tf.grad(f)(beta), tf.sum(dy, [0, 1, 2])];
    });
    const [dbeta, dySum] = wasm;
    assertClose(dbeta!, cpu[0]!, 'dbeta');
    const expected = [dySum![0]!, 0, dySum![2]!, dySum![3]!, 0, 0];
    expected.forEach((e, i) => {
      assert.ok(Math.abs(dbeta![i]! - e) < 1e-5, `channel ${i}: dbeta ${dbeta![i]} expected ${e}`);
    });
  });

  test('the fused kernels are what batchNormTrain runs on wasm (one kernel each way)', async () => {
    const x = input([2, 4, 4, 8], 7),
      gamma = tf.ones([8]) as tf.Tensor1D,
      beta = tf.zeros([8]) as tf.Tensor1D;
    const f = (xx: tf.Tensor) => tf.sum(batchNormTrain(xx as tf.Tensor4D, gamma, beta, 1e-5, undefined, true));
    const prof = await tf.profile(() => tf.grad(f)(x));
    const names = prof.kernels.map((k) => k.name);
    assert.equal(names.filter((n) => n === BATCH_NORM_TRAIN).length, 1, names.join(' '));
    assert.equal(names.filter((n) => n === BATCH_NORM_GRAD).length, 1, names.join(' '));
    assert.ok(!names.includes('BatchMatMul') && !names.includes('Relu6'), names.join(' '));
    tf.dispose([x, gamma, beta, prof.result as tf.Tensor]);
  });

  test('a wrong gamma shape is refused naming the kernel and the input', () => {
    const x = input([1, 2, 2, 4], 8),
      gamma = tf.ones([3]),
      beta = tf.zeros([4]);
    assert.throws(
      () => tf.engine().runKernel(BATCH_NORM_TRAIN, { x, gamma, beta }, { epsilon: 1e-5, relu6: false }),
      /HardnetBatchNormTrain: 'gamma' has shape \[3\], expected \[4\]/,
    );
    tf.dispose([x, gamma, beta]);
  });
});

describe('Concat and SplitV (row-block copies) vs cpu', () => {
  const cases: { shapes: number[][]; axis: number }[] = [
    {
      shapes: [
        [2, 3, 3, 5],
        [2, 3, 3, 7],
        [2, 3, 3, 70],
      ],
      axis: 3,
    }, // channel concat: short and long rows
    {
      shapes: [
        [2, 3, 4, 2],
        [2, 1, 4, 2],
      ],
      axis: 1,
    },
    {
      shapes: [
        [3, 4],
        [5, 4],
      ],
      axis: 0,
    },
    {
      shapes: [
        [2, 3, 3, 4],
        [2, 3, 3, 0],
        [2, 3, 3, 1],
      ],
      axis: -1,
    }, // an empty part, negative axis
  ];
  for (const { shapes, axis } of cases) {
    test(`concat ${JSON.stringify(shapes)} on axis ${axis} and its gradient (SplitV)`, () => {
      const [wasm, cpu] = onBoth(() => {
        const xs = shapes.map((s, i) => input(s, 10 + i));
        const out = tf.concat(xs, axis);
        const w = input(out.shape, 20);
        const grads = tf.grads((...ins: tf.Tensor[]) => tf.sum(tf.mul(tf.concat(ins, axis), w)))(xs);
        return [out, ...grads.filter((g) => g.size > 0)];
      });
      wasm.forEach((v, i) => {
        assertClose(v, cpu[i]!, i === 0 ? 'concat' : `grad ${i}`, 0);
      });
    });
  }

  test("split into equal parts and int32 concat (the stock kernel) give cpu's values", () => {
    const [wasm, cpu] = onBoth(() => [
      ...tf.split(input([2, 3, 12], 30), 3, 2),
      tf.cast(tf.concat([tf.tensor2d([[1, 2]], [1, 2], 'int32'), tf.tensor2d([[3]], [1, 1], 'int32')], 1), 'float32'),
    ]);
    wasm.forEach((v, i) => {
      assertClose(v, cpu[i]!, `output ${i}`, 0);
    });
  });
});

describe('MaxPoolGrad vs cpu', () => {
  const cases = [
    { shape: [2, 9, 9, 5], k: 3, s: 2, pad: 1, name: "3x3 s2 pad 1 (HarDNet's stem), odd size, 5 ch" },
    { shape: [2, 8, 8, 32], k: 3, s: 2, pad: 1, name: '3x3 s2 pad 1, even size, 32 ch' },
    { shape: [2, 8, 6, 6], k: 2, s: 2, pad: 'valid' as 'valid' | 'same' | number, name: '2x2 s2 valid' },
    { shape: [1, 7, 7, 4], k: 3, s: 2, pad: 'same' as 'valid' | 'same' | number, name: "3x3 s2 'same'" },
  ];
  for (const c of cases) {
    test(`${c.name}, with ties (first maximum wins)`, () => {
      const [wasm, cpu] = onBoth(() => {
        // integers in [-2, 2]: windows hold equal maxima, so the tie-breaking rule is exercised
        const x = tf.round(input(c.shape, 40)) as tf.Tensor4D;
        const pad = c.pad;
        const out = tf.maxPool(x, c.k, c.s, pad);
        const w = input(out.shape, 41);
        return tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xx as tf.Tensor4D, c.k, c.s, pad), w)))(x);
      });
      assertClose(wasm[0]!, cpu[0]!, 'dx', 1e-6);
    });
  }
});

test('Identity shares the buffer: a clone outlives its source with the same values', () => {
  const x = input([3, 5], 50);
  const values = x.dataSync().slice();
  const y = tf.clone(x);
  x.dispose();
  assert.deepEqual(Array.from(y.dataSync()), Array.from(values));
  y.dispose();
});

describe('Slice and Tile (contiguous-run copies) vs cpu', () => {
  const sliceCases: { shape: number[]; begin: number[]; size: number[] }[] = [
    { shape: [2, 6, 6, 5], begin: [0, 1, 1, 0], size: [2, 4, 4, 5] }, // the stem pad's gradient: whole channels
    { shape: [3, 5, 7, 4], begin: [1, 0, 2, 1], size: [2, 5, 3, 2] }, // a partial innermost axis
    { shape: [4, 9], begin: [1, 3], size: [2, -1] }, // rank 2, size -1 to the end
    { shape: [2, 3, 4, 5, 6], begin: [0, 1, 0, 2, 0], size: [2, 2, 4, 3, 6] }, // rank 5
  ];
  for (const c of sliceCases) {
    test(`slice [${c.shape}] at [${c.begin}] size [${c.size}], float32 and int32, and its gradient`, () => {
      const x = input(c.shape, 40);
      const [wasm, cpu] = onBoth(() => {
        const y = tf.slice(x, c.begin, c.size);
        const dy = tf.mul(y, 3);
        const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.slice(a, c.begin, c.size), dy)))(x);
        return [y, tf.slice(tf.cast(tf.mul(x, 100), 'int32'), c.begin, c.size), dx];
      });
      assertClose(wasm[0]!, cpu[0]!, 'Slice float32', 0);
      assert.deepEqual(Array.from(wasm[1]!), Array.from(cpu[1]!), 'Slice int32');
      assertClose(wasm[2]!, cpu[2]!, 'gradient of Slice', 0);
      x.dispose();
    });
  }

  const tileCases: { shape: number[]; reps: number[] }[] = [
    { shape: [2, 1, 1, 6], reps: [1, 3, 4, 1] }, // the head's global-pool gradient (broadcastTo)
    { shape: [2, 3], reps: [3, 2] },
    { shape: [2, 2, 3], reps: [2, 1, 3] },
    { shape: [5], reps: [1] },
  ];
  for (const c of tileCases) {
    test(`tile [${c.shape}] by [${c.reps}], float32 and int32`, () => {
      const x = input(c.shape, 41);
      const [wasm, cpu] = onBoth(() => [
        tf.tile(x, c.reps),
        tf.tile(tf.cast(tf.mul(x, 100), 'int32'), c.reps),
        // broadcastTo widens only the axes of length 1 (it runs Tile)
        tf.broadcastTo(
          x,
          c.shape.map((n, d) => (n === 1 ? c.reps[d]! : n)),
        ),
      ]);
      assertClose(wasm[0]!, cpu[0]!, 'Tile float32', 0);
      assert.deepEqual(Array.from(wasm[1]!), Array.from(cpu[1]!), 'Tile int32');
      assertClose(wasm[2]!, cpu[2]!, 'broadcastTo', 0);
      x.dispose();
    });
  }

  test('bool tensors still slice and tile (the stock kernels)', () => {
    const x = tf.tensor2d(
      [
        [true, false, true],
        [false, false, true],
      ],
      undefined,
      'bool',
    );
    // bool values read back as 0 and 1
    assert.deepEqual(tf.slice(x, [0, 1], [2, 2]).arraySync(), [
      [0, 1],
      [0, 1],
    ]);
    assert.deepEqual(tf.tile(x, [1, 2]).arraySync(), [
      [1, 0, 1, 1, 0, 1],
      [0, 0, 1, 0, 0, 1],
    ]);
    x.dispose();
  });
});
