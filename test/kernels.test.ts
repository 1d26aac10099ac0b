// The project's wasm training kernels (worker/backend/wasm_kernels) against tfjs-backend-cpu's
// reference implementations: same op, same inputs, both backends, compared within float tolerance.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { selectBackend } from '../worker/backend/select.js';
import { assertClose, onBoth } from './helpers/wasm_vs_cpu.js';
import { WASM_TRAINING_KERNELS } from '../worker/backend/wasm_kernels/index.js';
import { WINOGRAD, WINOGRAD_F4_MIN_PIXELS, winogradTile } from '../worker/backend/wasm_kernels/conv2d.js';
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
/** A stride-1 'same' convolution gradient kernel called directly, as tf.grad's would be */
const sameGradient = (
  kernel: 'Conv2DBackpropInput' | 'Conv2DBackpropFilter',
  inputs: Record<string, tf.Tensor>,
  shape: { inputShape: number[] } | { filterShape: number[] },
) => tf.engine().runKernel(kernel, inputs, { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', ...shape }) as tf.Tensor;

const withTile = <T>(tile: 2 | 4, f: () => T): T => {
  WINOGRAD.tile = tile;
  try {
    return f();
  } finally {
    WINOGRAD.tile = 'auto';
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
    const bpInput = () => sameGradient('Conv2DBackpropInput', { dy, filter: w }, { inputShape: x.shape });
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

  test('Winograd F(2x2, 3x3) and the stock kernel agree on a HarDNet-like layer (28x28, 218 -> 78)', () => {
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

/**
 * A 3x3 stride-1 convolution in float64, x [n,h,w,ci] with `pad` zeros each side, g [3,3,ci,co]: the exact sum that
 * both the float32 kernels and the cpu backend only approximate.
 */
function conv3x3Float64(x: Float32Array, g: Float32Array, n: number, h: number, w: number, ci: number, co: number) {
  const y = new Float64Array(n * h * w * co);
  for (let b = 0; b < n; b++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        const at = ((b * h + i) * w + j) * co;
        for (let kh = 0; kh < 3; kh++) {
          const ii = i - 1 + kh;
          if (ii < 0 || ii >= h) continue;
          for (let kw = 0; kw < 3; kw++) {
            const jj = j - 1 + kw;
            if (jj < 0 || jj >= w) continue;
            const xAt = ((b * h + ii) * w + jj) * ci;
            for (let c = 0; c < ci; c++) {
              const v = x[xAt + c]!;
              const gAt = ((kh * 3 + kw) * ci + c) * co;
              for (let o = 0; o < co; o++) y[at + o]! += v * g[gAt + o]!;
            }
          }
        }
      }
  return y;
}

/** max and root-mean-square |actual - exact|, each relative to max |exact| */
function errorsAgainst(actual: Float32Array, exact: Float64Array): { max: number; rms: number } {
  let max = 0,
    sq = 0,
    scale = 0;
  for (let i = 0; i < exact.length; i++) {
    const d = Math.abs(actual[i]! - exact[i]!);
    max = Math.max(max, d);
    sq += d * d;
    scale = Math.max(scale, Math.abs(exact[i]!));
  }
  return { max: max / scale, rms: Math.sqrt(sq / exact.length) / scale };
}

describe('Winograd F(4x4, 3x3) and F(3x3, 4x4): the forward and both gradients against a float64 sum', () => {
  // F(4x4, 3x3)'s transforms multiply by up to 8 and divide by 24, so it is further from the exact sum than the
  // direct float32 kernels: on the HarDNet layer below, the forward 1.2e-5 of max |y| at most and 5.6e-7 RMS,
  // against XNNPACK's 1.5e-6 and 1.5e-7 and F(2x2, 3x3)'s 5.6e-7 and 8.5e-8; the filter gradient by F(3x3, 4x4)
  // 8.8e-6 and 6.5e-7 (the direct GEMM 4.9e-7 and 8.6e-8). The bounds are about 2.5x those, so a wrong transform
  // coefficient (errors of order 1) or a lost tile edge fails them by orders of magnitude.
  const MAX_REL = 3e-5;
  const RMS_REL = 1.5e-6;

  test('the gradients take 4x4 tiles from WINOGRAD_F4_MIN_PIXELS pixels a call, 2x2 below; the forward always 2x2', () => {
    assert.equal(winogradTile('gradient', 8, 28, 28), 4);
    assert.equal(winogradTile('gradient', 8, 7, 7), 4);
    assert.equal(winogradTile('gradient', 1, 14, 14), 2);
    assert.equal(winogradTile('gradient', 1, 7, 7), 2);
    assert.equal(winogradTile('gradient', 1, 1, WINOGRAD_F4_MIN_PIXELS), 4);
    assert.equal(winogradTile('gradient', 1, 1, WINOGRAD_F4_MIN_PIXELS - 1), 2);
    assert.equal(winogradTile('forward', 8, 56, 56), 2);
    assert.equal(
      withTile(4, () => winogradTile('forward', 1, 4, 4)),
      4,
    );
  });

  for (const c of [
    { n: 8, h: 28, w: 28, ci: 218, co: 78 }, // HarDNet68's 28x28 block at batch 8
    { n: 2, h: 13, w: 11, ci: 14, co: 22 }, // partial tiles on both edges, ragged channels on both sides
    { n: 1, h: 6, w: 9, ci: 300, co: 9 }, // two channel chunks (300 > 256), a single output-channel panel
  ]) {
    test(`Conv2D, Conv2DBackpropInput and Conv2DBackpropFilter, ${c.n}x${c.h}x${c.w}, ${c.ci} -> ${c.co}`, () => {
      const x = input([c.n, c.h, c.w, c.ci], 40),
        g = input([3, 3, c.ci, c.co], 41),
        dy = input([c.n, c.h, c.w, c.co], 42);
      const xs = x.dataSync() as Float32Array,
        gs = g.dataSync() as Float32Array,
        dys = dy.dataSync() as Float32Array;
      // dx = dy convolved with g flipped in space and transposed in channels, pad 1
      const flipped = new Float32Array(gs.length);
      for (let kh = 0; kh < 3; kh++)
        for (let kw = 0; kw < 3; kw++)
          for (let ci = 0; ci < c.ci; ci++)
            for (let o = 0; o < c.co; o++)
              flipped[((kh * 3 + kw) * c.co + o) * c.ci + ci] = gs[(((2 - kh) * 3 + (2 - kw)) * c.ci + ci) * c.co + o]!;
      const exactY = conv3x3Float64(xs, gs, c.n, c.h, c.w, c.ci, c.co);
      const exactDx = conv3x3Float64(dys, flipped, c.n, c.h, c.w, c.co, c.ci);
      const forward = () => tf.conv2d(x as tf.Tensor4D, g as tf.Tensor4D, 1, 'same');
      const inputGrad = () => sameGradient('Conv2DBackpropInput', { dy, filter: g }, { inputShape: x.shape });
      // dw[kh, kw, ci, o] = sum over pixels of x (padded by 1, shifted by kh, kw) times dy
      const exactDw = new Float64Array(9 * c.ci * c.co);
      for (let b = 0; b < c.n; b++)
        for (let i = 0; i < c.h; i++)
          for (let j = 0; j < c.w; j++)
            for (let kh = 0; kh < 3; kh++) {
              const ii = i - 1 + kh;
              if (ii < 0 || ii >= c.h) continue;
              for (let kw = 0; kw < 3; kw++) {
                const jj = j - 1 + kw;
                if (jj < 0 || jj >= c.w) continue;
                const xAt = ((b * c.h + ii) * c.w + jj) * c.ci;
                const dyAt = ((b * c.h + i) * c.w + j) * c.co;
                for (let ci = 0; ci < c.ci; ci++) {
                  const v = xs[xAt + ci]!;
                  const at = ((kh * 3 + kw) * c.ci + ci) * c.co;
                  for (let o = 0; o < c.co; o++) exactDw[at + o]! += v * dys[dyAt + o]!;
                }
              }
            }
      const filterGrad = () => sameGradient('Conv2DBackpropFilter', { x, dy }, { filterShape: g.shape });
      for (const [what, f, exact] of [
        ['Conv2D', forward, exactY],
        ['Conv2DBackpropInput', inputGrad, exactDx],
        ['Conv2DBackpropFilter', filterGrad, exactDw],
      ] as const) {
        const f4 = withTile(4, () => Float32Array.from(tf.tidy(f).dataSync()));
        const f2 = withTile(2, () => Float32Array.from(tf.tidy(f).dataSync()));
        const e4 = errorsAgainst(f4, exact);
        const e2 = errorsAgainst(f2, exact);
        assert.ok(e4.max <= MAX_REL && e4.rms <= RMS_REL, `${what} F(4x4): max ${e4.max}, rms ${e4.rms}`);
        assert.ok(e2.max <= MAX_REL / 4 && e2.rms <= RMS_REL / 4, `${what} F(2x2): max ${e2.max}, rms ${e2.rms}`);
      }
      tf.dispose([x, g, dy]);
    });
  }
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
