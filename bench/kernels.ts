// Speed of the convolution kernels a HarDNet training step runs on the wasm backend: forward
// conv (tfjs-backend-wasm / XNNPACK), and the project's backprop-input / backprop-filter kernels
// (worker/backend/wasm_kernels), at HarDNet68 shapes @224 batch 8 and @32 batch 64.
// Prints median ms and GFLOP/s per kernel (3x3 stride-1 ones run as Winograd: GFLOP/s counts the direct
// convolution's 2*MACs, so it is the effective rate), and the stock Conv2D (XNNPACK) and Conv2DBackpropInput for
// comparison.
// Then the memory-bound kernels (fused BatchNorm+ReLU6 forward+backward vs the tensor-op version, Concat,
// SplitV, MaxPoolGrad vs the stock tfjs-backend-wasm kernels) in ms and GB/s of tensor data touched.
// Usage: npm run bench:kernels [-- --reps 5] [-- --no-stock] [-- --no-conv]
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { selectBackend } from '../worker/backend/select.js';
import { batchNormTrain, batchNormTrainOps } from '../worker/model/batchnorm.js';

const args = process.argv.slice(2);
const reps = Number(args[args.indexOf('--reps') + 1] ?? 5) || 5;
const withStock = !args.includes('--no-stock');

// Captured before selectBackend replaces it, to show what the replacement buys.
const stockBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
const stockConv2D = tf.getKernel('Conv2D', 'wasm'); // XNNPACK; ours runs 3x3 stride-1 convs as Winograd
const stockConcat = tf.getKernel('Concat', 'wasm');
const stockSplitV = tf.getKernel('SplitV', 'wasm');
const stockMaxPoolGrad = tf.getKernel('MaxPoolGrad', 'wasm');
await selectBackend('wasm', { gpuAssigned: false, log: (m) => console.log(m) });
const backend = tf.backend();
// Its setup (binding the C function) ran only if it was registered when the backend started.
stockBackpropInput?.setupFunc?.(backend);
stockMaxPoolGrad?.setupFunc?.(backend);

interface Case {
  label: string;
  n: number;
  h: number;
  ci: number;
  co: number;
  k: number;
  s: number;
  depthwise?: boolean;
}
const cases: Case[] = [
  { label: 'H68@224 stem conv1 3x3 s2', n: 8, h: 224, ci: 3, co: 32, k: 3, s: 2 },
  { label: 'H68@224 stem conv2 3x3', n: 8, h: 112, ci: 32, co: 64, k: 3, s: 1 },
  { label: 'H68@224 block 3x3 56x56', n: 8, h: 56, ci: 64, co: 64, k: 3, s: 1 },
  { label: 'H68@224 block 3x3 56x56 narrow', n: 8, h: 56, ci: 102, co: 24, k: 3, s: 1 },
  { label: 'H68@224 block 3x3 28x28', n: 8, h: 28, ci: 128, co: 64, k: 3, s: 1 },
  { label: 'H68@224 transition 1x1 56x56', n: 8, h: 56, ci: 190, co: 128, k: 1, s: 1 },
  { label: 'H68@224 transition 1x1 14x14', n: 8, h: 14, ci: 720, co: 640, k: 1, s: 1 },
  { label: 'dw 3x3 s2 56x56 (ds)', n: 8, h: 56, ci: 64, co: 64, k: 3, s: 2, depthwise: true },
  { label: 'H68@32 stem conv1 3x3 s2', n: 64, h: 32, ci: 3, co: 32, k: 3, s: 2 },
  { label: 'H68@32 stem conv2 3x3', n: 64, h: 16, ci: 32, co: 64, k: 3, s: 1 },
  { label: 'H68@32 block 3x3 8x8', n: 64, h: 8, ci: 64, co: 64, k: 3, s: 1 },
  { label: 'H68@32 block 3x3 4x4', n: 64, h: 4, ci: 128, co: 64, k: 3, s: 1 },
  { label: 'H68@32 transition 1x1 8x8', n: 64, h: 8, ci: 190, co: 128, k: 1, s: 1 },
];

function medianMs(fn: () => tf.TensorInfo, times: number): number {
  tf.dispose(fn() as tf.Tensor); // warm-up: compiles, grows memory
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    const out = fn();
    ms.push(performance.now() - t0); // wasm kernels are synchronous: the data is ready on return
    backend.disposeData(out.dataId);
  }
  ms.sort((a, b) => a - b);
  return ms[ms.length >> 1]!;
}

const fmt = (ms: number, flops: number) =>
  `${ms.toFixed(1).padStart(7)} ms ${(flops / ms / 1e6).toFixed(1).padStart(5)} GF/s`;
console.log(`median of ${reps}; GF/s = 2*MACs/time; one thread`);
for (const c of args.includes('--no-conv') ? [] : cases) {
  const p = c.k >> 1;
  const pad: [[number, number], [number, number], [number, number], [number, number]] = [
    [0, 0],
    [p, p],
    [p, p],
    [0, 0],
  ];
  const strides: [number, number] = [c.s, c.s];
  const x = tf.randomNormal([c.n, c.h, c.h, c.ci]) as tf.Tensor4D;
  const w = tf.randomNormal(c.depthwise ? [c.k, c.k, c.ci, 1] : [c.k, c.k, c.ci, c.co]) as tf.Tensor4D;
  const y = c.depthwise ? tf.depthwiseConv2d(x, w, c.s, pad) : tf.conv2d(x, w, c.s, pad);
  const dy = tf.randomNormal(y.shape);
  const flops = 2 * y.size * (c.depthwise ? 1 : c.ci) * c.k * c.k;
  const run = (name: string, inputs: tf.NamedTensorMap, attrs: object) => () =>
    tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.TensorInfo;
  let line: string;
  if (c.depthwise) {
    const fwd = medianMs(() => tf.depthwiseConv2d(x, w, c.s, pad), reps);
    const bi = medianMs(
      run('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, { strides, pad, dilations: 1, inputShape: x.shape }),
      reps,
    );
    const bf = medianMs(
      run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { strides, pad, dilations: 1, filterShape: w.shape }),
      reps,
    );
    line = `fwd ${fmt(fwd, flops)} | bpInput ${fmt(bi, flops)} | bpFilter ${fmt(bf, flops)}`;
  } else {
    const fwd = medianMs(() => tf.conv2d(x, w, c.s, pad), reps);
    const bi = medianMs(
      run('Conv2DBackpropInput', { dy, filter: w }, { strides, pad, dataFormat: 'NHWC', inputShape: x.shape }),
      reps,
    );
    const bf = medianMs(
      run('Conv2DBackpropFilter', { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape: w.shape }),
      reps,
    );
    line = `fwd ${fmt(fwd, flops)} | bpInput ${fmt(bi, flops)} | bpFilter ${fmt(bf, flops)}`;
    if (withStock && stockConv2D) {
      const xnn = medianMs(
        () =>
          stockConv2D.kernelFunc({
            inputs: { x, filter: w },
            backend,
            attrs: { strides, pad, dataFormat: 'NHWC', dilations: 1 },
          }) as tf.TensorInfo,
        reps,
      );
      line += ` | XNNPACK fwd ${fmt(xnn, flops)}`;
    }
    if (withStock && stockBackpropInput && c.ci > 3) {
      const stock = medianMs(
        () =>
          stockBackpropInput.kernelFunc({
            inputs: { dy, filter: w },
            backend,
            attrs: { strides, pad, dataFormat: 'NHWC', inputShape: x.shape },
          }) as tf.TensorInfo,
        1,
      );
      line += ` | stock bpInput ${fmt(stock, flops)}`;
    }
  }
  console.log(`${c.label.padEnd(32)} ${line}`);
  tf.dispose([x, w, y, dy]);
}

// Memory-bound kernels. GB/s counts each tensor read or written once (the kernels' minimum traffic).
console.log('\nmemory-bound kernels, H68 shapes; GB/s = tensor bytes touched / time');
const gbs = (ms: number, floats: number) =>
  `${ms.toFixed(1).padStart(7)} ms ${((floats * 4) / ms / 1e6).toFixed(1).padStart(5)} GB/s`;
const stockLine = (k: tf.KernelConfig | undefined, inputs: object, attrs: object, floats: number) =>
  withStock && k
    ? ` | stock ${gbs(
        medianMs(() => {
          const out = k.kernelFunc({ inputs: inputs as tf.NamedTensorMap, backend, attrs: attrs as tf.NamedAttrMap });
          const list = Array.isArray(out) ? out : [out];
          list.slice(1).forEach((t) => {
            backend.disposeData(t.dataId);
          });
          return list[0]!;
        }, reps),
        floats,
      )}`
    : '';

for (const shape of [
  [8, 112, 112, 64],
  [8, 56, 56, 24],
  [64, 8, 8, 190],
] as [number, number, number, number][]) {
  const c = shape[3];
  const x = tf.randomNormal(shape) as tf.Tensor4D,
    w = tf.randomNormal(shape);
  const gamma = tf.ones([c]) as tf.Tensor1D,
    beta = tf.zeros([c]) as tf.Tensor1D;
  // forward + backward of BN+ReLU6 as the model runs it (dy given); wasm kernels are
  // synchronous, so the wall time to the gradients' return is the compute time (reading a 25 MB tensor back would
  // add allocation noise of its own)
  const timeStep = (bn: (xx: tf.Tensor4D) => tf.Tensor) => {
    const step = () => {
      const gs = tf.grads((xx: tf.Tensor, _g: tf.Tensor, _b: tf.Tensor) => bn(xx as tf.Tensor4D))([x, gamma, beta], w);
      tf.dispose(gs);
    };
    step();
    const ms: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      step();
      ms.push(performance.now() - t0);
    }
    return ms.sort((a, b) => a - b)[ms.length >> 1]!;
  };
  const fused = timeStep((xx) => batchNormTrain(xx, gamma, beta, 1e-5, undefined, true));
  const ops = timeStep((xx) => tf.relu6(batchNormTrainOps(xx, gamma, beta, 1e-5)));
  console.log(
    `${`BN+ReLU6 fwd+bwd [${shape}]`.padEnd(36)} fused ${fused.toFixed(1).padStart(7)} ms | tensor ops ${ops.toFixed(1).padStart(7)} ms`,
  );
  tf.dispose([x, w, gamma, beta]);
}

{
  // a HarDNet68 56x56 block's output concat and its gradient's split
  const widths = [64, 14, 16, 14, 20, 14, 16, 14, 40];
  const parts = widths.map((c) => tf.randomNormal([8, 56, 56, c]));
  const floats = 2 * parts.reduce((a, t) => a + t.size, 0);
  const concat = medianMs(
    () => tf.engine().runKernel('Concat', parts as unknown as tf.NamedTensorMap, { axis: 3 }) as tf.TensorInfo,
    reps,
  );
  console.log(
    `${`Concat 9 parts -> [8,56,56,${widths.reduce((a, b) => a + b)}]`.padEnd(36)} ${gbs(concat, floats)}${stockLine(stockConcat, parts, { axis: 3 }, floats)}`,
  );
  const whole = tf.concat(parts, 3);
  const splitFirst = () => {
    const outs = tf
      .engine()
      .runKernel('SplitV', { x: whole }, { numOrSizeSplits: widths, axis: 3 }) as unknown as tf.TensorInfo[];
    outs.slice(1).forEach((t) => {
      backend.disposeData(t.dataId);
    });
    return outs[0]!;
  };
  const split = medianMs(splitFirst, reps);
  console.log(
    `${'SplitV the same back'.padEnd(36)} ${gbs(split, floats)}${stockLine(stockSplitV, { x: whole }, { numOrSizeSplits: widths, axis: 3 }, floats)}`,
  );
  tf.dispose([...parts, whole]);
}

{
  const x = tf.randomNormal([8, 112, 112, 64]) as tf.Tensor4D;
  const y = tf.maxPool(x, 3, 2, 1);
  const dy = tf.randomNormal(y.shape);
  const attrs = { filterSize: 3, strides: 2, pad: 1 };
  const inputs = { dy, input: x, output: y };
  const floats = 2 * x.size + dy.size;
  const ms = medianMs(() => tf.engine().runKernel('MaxPoolGrad', inputs, attrs) as tf.TensorInfo, reps);
  console.log(
    `${'MaxPoolGrad 3x3 s2 [8,112,112,64]'.padEnd(36)} ${gbs(ms, floats)}${stockLine(stockMaxPoolGrad, inputs, attrs, floats)}`,
  );
  tf.dispose([x, y, dy]);
}
