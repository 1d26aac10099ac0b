/**
 * npm run bench:conv-step -- [--model HarDNet68] [--batch 8] [--image_size 224] [--reps 3] [--build <checkout>]
 *                            [--per_shape] [--tile auto|2|4]
 *
 * Every convolution kernel call of one training step on wasm (the shapes recorded from the step itself under
 * tf.profile), each timed alone `--reps` times in process CPU time, the minimum summed per kind: forward / input
 * gradient / filter gradient, by filter, stride and path (Winograd or direct). The minimum of repeated single calls
 * is what a shared machine disturbs least, so two builds can be compared kernel by kernel: `--build` runs another
 * checkout's dist/ (its model, backend and kernels, with its own node_modules), e.g. the commit before a change.
 */
import { Command } from 'commander';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const o = new Command('bench:conv-step')
  .option('--model <name>', 'architecture', 'HarDNet68')
  .option('--batch <n>', 'images per step', '8')
  .option('--image_size <n>', 'input size', '224')
  .option('--reps <n>', 'timed calls per kernel (the minimum counts)', '3')
  .option('--build <checkout>', 'the checkout whose dist/ and node_modules/ to run (default: this one)')
  .option('--per_shape', 'also print every call')
  .option('--tile <t>', "Winograd's tile: auto (the build's rule), 2 or 4 (this build only)", 'auto')
  .parse()
  .opts();

const here = path.dirname(fileURLToPath(import.meta.url));
const root = o.build ? path.resolve(String(o.build)) : path.resolve(here, '../..');
const from = (p: string) => import(pathToFileURL(path.join(root, p)).href);
// all from the same checkout, so that its model, its kernels and the tfjs-core they register with are one set
const tf = await from('node_modules/@tensorflow/tfjs-core/dist/tf-core.node.js');
const { selectBackend } = await from('dist/worker/backend/select.js');
const { HarDNet } = await from('dist/worker/model/hardnet.js');
const { computeGradients } = await from('dist/worker/train/step.js');
await selectBackend('wasm', { gpuAssigned: false, log: () => {} });
if (o.tile !== 'auto') {
  const { WINOGRAD } = await from('dist/worker/backend/wasm_kernels/conv2d.js');
  if (!('tile' in WINOGRAD)) throw new Error(`--tile: the build at ${root} has a single Winograd tile`);
  WINOGRAD.tile = Number(o.tile);
}

interface Call {
  name: string;
  inputShapes: number[][];
  outputShapes: number[][];
}
const batch = Number(o.batch);
const size = Number(o.image_size);
const model = new HarDNet(o.model, 1000, 1);
const x0 = tf.randomNormal([batch, size, size, 3]);
const labels = tf.tensor1d(
  Array.from({ length: batch }, (_, i) => i % 1000),
  'int32',
);
const info = await tf.profile(() => {
  const r = computeGradients(model, x0, labels);
  return [r.loss, ...r.grads.values()];
});
const calls = (info.kernels as Call[]).filter((k) => k.name.startsWith('Conv2D'));

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
const tensors = new Map<string, unknown>();
const random = (shape: number[]) => {
  const key = shape.join(',');
  if (!tensors.has(key)) tensors.set(key, tf.randomNormal(shape));
  return tensors.get(key);
};
const kinds = new Map<string, { ms: number; flops: number; calls: number }>();
const reps = Number(o.reps);
for (const c of calls) {
  // x [N,H,W,Ci], y [N,OH,OW,Co], f [KH,KW,Ci,Co], whichever of them this kernel reads or writes
  const [x, y, f] =
    c.name === 'Conv2D'
      ? [c.inputShapes[0]!, c.outputShapes[0]!, c.inputShapes[1]!]
      : c.name === 'Conv2DBackpropInput'
        ? [c.outputShapes[0]!, c.inputShapes[0]!, c.inputShapes[1]!]
        : [c.inputShapes[0]!, c.inputShapes[1]!, c.outputShapes[0]!];
  const stride = Math.round(x[1]! / y[1]!);
  // HarDNet pads stride-1 convs 'same' and stride-2 ones explicitly before a 'valid' conv (worker/model/hardnet.ts)
  const pad = stride === 1 && x[1] === y[1] ? 'same' : 'valid';
  const attrs = { strides: stride, pad, dataFormat: 'NHWC', dilations: 1 };
  const [inputs, allAttrs] =
    c.name === 'Conv2D'
      ? [{ x: random(x), filter: random(f) }, attrs]
      : c.name === 'Conv2DBackpropInput'
        ? [
            { dy: random(y), filter: random(f) },
            { ...attrs, inputShape: x },
          ]
        : [
            { x: random(x), dy: random(y) },
            { ...attrs, filterShape: f },
          ];
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = cpuMs();
    const out = tf.engine().runKernel(c.name, inputs, allAttrs);
    best = Math.min(best, cpuMs() - t0);
    tf.dispose(out);
  }
  const winograd = f[0] === 3 && f[1] === 3 && stride === 1;
  const cls = `${f[0]}x${f[1]} s${stride}${winograd ? (Math.min(f[2]!, f[3]!) < 32 ? ' narrow' : ' wide') : ''}`;
  const key = `${c.name} ${cls}`;
  const flops = 2 * prod(y) * f[0]! * f[1]! * f[2]!;
  if (o.per_shape) console.log(`  ${c.name} x [${x}] filter [${f}]: ${best.toFixed(2)} ms`);
  const e = kinds.get(key) ?? { ms: 0, flops: 0, calls: 0 };
  e.ms += best;
  e.flops += flops;
  e.calls++;
  kinds.set(key, e);
}
let total = 0;
console.log(
  `${o.model} batch ${batch} @${size}, ${root}: min of ${reps} single calls, CPU ms; GFLOP/s = 2 * direct MACs`,
);
for (const [k, e] of [...kinds].sort((a, b) => b[1].ms - a[1].ms)) {
  total += e.ms;
  console.log(
    `  ${k.padEnd(36)} ${e.ms.toFixed(0).padStart(6)} ms ${String(e.calls).padStart(4)} calls ${(e.flops / e.ms / 1e6).toFixed(1).padStart(6)} GFLOP/s`,
  );
}
console.log(`  all convolutions ${total.toFixed(0)} ms`);
