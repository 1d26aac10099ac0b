// The project's wasm training kernels (worker/backend/wasm_kernels) against tfjs-backend-cpu's
// reference implementations: same op, same inputs, both backends, compared within float tolerance.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { selectBackend } from '../worker/backend/select.js';
import { assertClose, onBoth } from './helpers/wasm_vs_cpu.js';
import { WASM_TRAINING_KERNELS } from '../worker/backend/wasm_kernels/index.js';
import { WINOGRAD } from '../worker/backend/wasm_kernels/conv2d.js';
import { KernelInvariantError } from '../worker/backend/wasm_kernels/errors.js';

type Pad = [[number, number], [number, number], [number, number], [number, number]];
const symmetric = (p: number): Pad => [
  [0, 0],
  [p, p],
  [p, p],
  [0, 0],
];

before(async () => {
  await selectBackend('wasm', { gpuAssigned: false, log: () => {} });
});

/** Deterministic inputs: the same values must reach both backends. */
const input = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

interface ConvCase {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
  s: number;
  pad: Pad | 'same' | 'valid';
}
const withoutWinograd = <T>(f: () => T): T => {
  WINOGRAD.enabled = false;
  try {
    return f();
  } finally {
    WINOGRAD.enabled = true;
  }
};
const convCases: ConvCase[] = [
  { n: 2, h: 15, w: 15, ci: 72, co: 70, k: 3, s: 1, pad: symmetric(1) }, // >64 channels, odd size
  { n: 3, h: 15, w: 15, ci: 68, co: 66, k: 3, s: 2, pad: symmetric(1) }, // stride 2, odd size
  { n: 2, h: 7, w: 7, ci: 3, co: 32, k: 3, s: 2, pad: symmetric(1) }, // stem: 3 channels straddle taps
  { n: 2, h: 8, w: 8, ci: 96, co: 72, k: 1, s: 1, pad: symmetric(0) }, // 1x1 transition (direct path)
  { n: 2, h: 7, w: 9, ci: 13, co: 5, k: 1, s: 2, pad: symmetric(0) }, // 1x1 strided, ragged tiles
  { n: 2, h: 8, w: 8, ci: 16, co: 12, k: 3, s: 2, pad: 'same' }, // tf's asymmetric 'same' padding
  { n: 1, h: 9, w: 9, ci: 8, co: 9, k: 3, s: 1, pad: 'valid' },
  { n: 1, h: 9, w: 10, ci: 34, co: 36, k: 3, s: 1, pad: 'valid' }, // Winograd input gradient, pads 2 - 0
  { n: 2, h: 9, w: 9, ci: 14, co: 22, k: 3, s: 1, pad: 'same' }, // Winograd, narrow: ragged channel tails
  { n: 2, h: 8, w: 8, ci: 10, co: 24, k: 3, s: 1, pad: 'same' }, // one side below WINOGRAD_MIN_CHANNELS: direct
  {
    n: 1,
    h: 6,
    w: 7,
    ci: 33,
    co: 40,
    k: 3,
    s: 1,
    pad: [
      [0, 0],
      [2, 0],
      [0, 1],
      [0, 0],
    ] as Pad,
  }, // asymmetric
];
const label = (c: ConvCase) => `${c.n}x${c.h}x${c.w}x${c.ci}->${c.co} k${c.k} s${c.s} pad ${JSON.stringify(c.pad)}`;

describe('Conv2D gradients: wasm kernels vs cpu', () => {
  for (const c of convCases) {
    test(`backprop filter and input, ${label(c)}`, () => {
      const x = input([c.n, c.h, c.w, c.ci], 1),
        w = input([c.k, c.k, c.ci, c.co], 2);
      const yShape = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.s, c.pad).shape;
      const dy = input(yShape, 3);
      const attrs = { strides: [c.s, c.s], pad: c.pad, dataFormat: 'NHWC' };
      const [wasm, cpu] = onBoth(() => [
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape }) as tf.Tensor,
        tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape }) as tf.Tensor,
      ]);
      assertClose(wasm![0]!, cpu![0]!, 'Conv2DBackpropFilter');
      assertClose(wasm![1]!, cpu![1]!, 'Conv2DBackpropInput');
      tf.dispose([x, w, dy]);
    });
  }

  test('3x3 stride-1 input gradient by the direct GEMM (Winograd off) agrees with cpu and with Winograd', () => {
    const x = input([2, 11, 9, 40], 26),
      w = input([3, 3, 40, 36], 27),
      dy = input([2, 11, 9, 36], 28);
    const bpInput = () =>
      tf
        .engine()
        .runKernel(
          'Conv2DBackpropInput',
          { dy, filter: w },
          { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', inputShape: x.shape },
        ) as tf.Tensor;
    const [direct, cpu] = withoutWinograd(() => onBoth(bpInput));
    const [winograd] = onBoth(bpInput);
    assertClose(direct[0]!, cpu[0]!, 'Conv2DBackpropInput, direct');
    assertClose(winograd[0]!, direct[0]!, 'Conv2DBackpropInput, Winograd vs direct');
    tf.dispose([x, w, dy]);
  });

  test('full tf.grads of conv2d with explicit pads, stride 2 (what training calls)', () => {
    const x = input([2, 15, 15, 66], 4),
      w = input([3, 3, 66, 70], 5),
      r = input([2, 8, 8, 70], 6);
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, symmetric(1)), r));
    const [wasm, cpu] = onBoth(() => tf.grads(f)([x, w]));
    assertClose(wasm![0]!, cpu![0]!, 'd/dx');
    assertClose(wasm![1]!, cpu![1]!, 'd/dw');
  });
});

type ConvPad = Pad | 'same' | 'valid' | number;
interface ForwardCase {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
  s: number;
  pad: ConvPad;
}
const forwardCases: ForwardCase[] = [
  { n: 2, h: 15, w: 15, ci: 72, co: 70, k: 3, s: 1, pad: 1 }, // Winograd: numeric pad, odd size
  { n: 2, h: 9, w: 7, ci: 300, co: 40, k: 3, s: 1, pad: 'same' }, // Winograd: two channel chunks (300 > 256)
  { n: 1, h: 9, w: 10, ci: 33, co: 34, k: 3, s: 1, pad: 'valid' }, // Winograd: 'valid', ragged channels
  {
    n: 1,
    h: 6,
    w: 7,
    ci: 36,
    co: 33,
    k: 3,
    s: 1,
    pad: [
      [0, 0],
      [2, 0],
      [0, 1],
      [0, 0],
    ],
  }, // Winograd: asymmetric
  { n: 3, h: 15, w: 15, ci: 68, co: 66, k: 3, s: 2, pad: symmetric(1) }, // stride 2: the stock kernel
  { n: 2, h: 8, w: 8, ci: 20, co: 10, k: 3, s: 1, pad: 'same' }, // below WINOGRAD_MIN_CHANNELS: the stock kernel
  { n: 2, h: 9, w: 10, ci: 24, co: 14, k: 3, s: 1, pad: 'same' }, // Winograd: HarDNet's narrowest layers, ragged channels
  { n: 2, h: 7, w: 7, ci: 96, co: 72, k: 1, s: 1, pad: 0 }, // 1x1: the stock kernel
  { n: 2, h: 7, w: 7, ci: 3, co: 32, k: 3, s: 2, pad: symmetric(1) }, // stem
];

describe('Conv2D forward: wasm kernel vs cpu', () => {
  for (const c of forwardCases) {
    test(`${c.n}x${c.h}x${c.w}x${c.ci}->${c.co} k${c.k} s${c.s} pad ${JSON.stringify(c.pad)}`, () => {
      const x = input([c.n, c.h, c.w, c.ci], 21),
        w = input([c.k, c.k, c.ci, c.co], 22);
      const [wasm, cpu] = onBoth(() => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.s, c.pad));
      assertClose(wasm[0]!, cpu[0]!, 'Conv2D');
      tf.dispose([x, w]);
    });
  }

  test('Winograd and the stock kernel agree on a HarDNet-like layer (28x28, 218 -> 78)', () => {
    const x = input([2, 28, 28, 218], 29),
      w = input([3, 3, 218, 78], 30);
    const conv = () => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 1);
    const [winograd, cpu] = onBoth(conv);
    const [stock] = withoutWinograd(() => onBoth(conv));
    assertClose(winograd[0]!, cpu[0]!, 'Conv2D, Winograd');
    assertClose(winograd[0]!, stock[0]!, 'Conv2D, Winograd vs XNNPACK');
    tf.dispose([x, w]);
  });

  test("a result reused as the next conv's input and the same filter twice (no state between calls)", () => {
    const x = input([2, 10, 10, 40], 23),
      w1 = input([3, 3, 40, 36], 24),
      w2 = input([1, 1, 36, 40], 25);
    const f = () => {
      const y = tf.conv2d(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, 'same'), w2 as tf.Tensor4D, 1, 'valid');
      return tf.conv2d(y, w1 as tf.Tensor4D, 2, 1);
    };
    const [wasm, cpu] = onBoth(f);
    assertClose(wasm[0]!, cpu[0]!, 'Conv2D chain', 3e-5);
    tf.dispose([x, w1, w2]);
  });
});

describe('Depthwise gradients: wasm kernels vs cpu', () => {
  for (const [n, h, c, s] of [
    [2, 15, 70, 1],
    [3, 15, 72, 2],
    [2, 7, 5, 2],
    [2, 8, 64, 2],
  ] as const) {
    test(`backprop filter and input, ${n}x${h}x${h}x${c} 3x3 s${s} pad 1`, () => {
      const x = input([n, h, h, c], 7),
        w = input([3, 3, c, 1], 8);
      const dy = input(tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, symmetric(1)).shape, 9);
      const attrs = { strides: [s, s], pad: symmetric(1), dilations: 1 };
      const [wasm, cpu] = onBoth(() => [
        tf
          .engine()
          .runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape }) as tf.Tensor,
        tf
          .engine()
          .runKernel(
            'DepthwiseConv2dNativeBackpropInput',
            { dy, filter: w },
            { ...attrs, inputShape: x.shape },
          ) as tf.Tensor,
      ]);
      assertClose(wasm![0]!, cpu![0]!, 'DepthwiseConv2dNativeBackpropFilter');
      assertClose(wasm![1]!, cpu![1]!, 'DepthwiseConv2dNativeBackpropInput');
      tf.dispose([x, w, dy]);
    });
  }

  test('full tf.grads of depthwiseConv2d with explicit pads, stride 2', () => {
    const x = input([2, 15, 15, 68], 10),
      w = input([3, 3, 68, 1], 11),
      r = input([2, 8, 8, 68], 12);
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, symmetric(1)), r));
    const [wasm, cpu] = onBoth(() => tf.grads(f)([x, w]));
    assertClose(wasm![0]!, cpu![0]!, 'd/dx');
    assertClose(wasm![1]!, cpu![1]!, 'd/dw');
  });

  test('a channel multiplier other than 1 is refused with a message naming it', () => {
    const x = input([1, 5, 5, 4], 13),
      dy = input([1, 5, 5, 8], 14);
    assert.throws(
      () =>
        tf
          .engine()
          .runKernel(
            'DepthwiseConv2dNativeBackpropFilter',
            { x, dy },
            { strides: 1, pad: symmetric(1), dilations: 1, filterShape: [3, 3, 4, 2] },
          ),
      /channel multiplier 1.*\[3,3,4,2\]/,
    );
    tf.dispose([x, dy]);
  });
});

test('the project kernels are the ones registered for wasm, replacing the stock Conv2DBackpropInput', () => {
  for (const config of WASM_TRAINING_KERNELS)
    assert.equal(tf.getKernel(config.kernelName, 'wasm')?.kernelFunc, config.kernelFunc, config.kernelName);
});

test('NCHW input is refused with a message naming the kernel', () => {
  const x = input([1, 4, 5, 5], 15),
    dy = input([1, 2, 5, 5], 16);
  assert.throws(
    () =>
      tf
        .engine()
        .runKernel(
          'Conv2DBackpropFilter',
          { x, dy },
          { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 4, 2] },
        ),
    (e: unknown) => e instanceof KernelInvariantError && /Conv2DBackpropFilter: only NHWC/.test(e.message),
  );
  tf.dispose([x, dy]);
});

test("the shipped kernel module writes nothing into tfjs's heap when instantiated (no data section, no start function)", async () => {
  const { wasmSectionIds, kernelModule } = await import('../worker/backend/wasm_kernels/module.js');
  const { KERNELS_WASM_BASE64 } = await import('../worker/backend/wasm_kernels/kernels_wasm.js');
  const ids = wasmSectionIds(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
  assert.ok(ids.includes(10), 'the parser finds the code section');
  assert.deepEqual(
    ids.filter((id) => id === 8 || id === 11),
    [],
  );
  assert.deepEqual(
    WebAssembly.Module.imports(kernelModule()).map((i) => `${i.module}.${i.name}:${i.kind}`),
    ['env.memory:memory'],
  );
  // the parser on a hand-made module with one memory and one data segment, the case the guard refuses
  const withData = Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 1, 11, 7, 1, 0, 0x41, 0, 0x0b, 1, 42]);
  assert.ok(WebAssembly.validate(withData));
  assert.deepEqual(wasmSectionIds(withData), [5, 11]);
});
