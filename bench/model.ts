/**
 * npm run bench:model -- --model HarDNet68 --batch 8 --image_size 224 --backend wasm [--steps 5] [--warmup 2] [--json]
 *   [--profile]
 *
 * Forward (eval mode) and training-step (forward + backward + Momentum update + BN statistics) images/s, each the
 * median over the timed steps after warm-up, and the process's peak RSS (--train_only: the training step only). --profile then runs one more
 * forward+backward under tf.profile and prints, per kernel, its share of the step, calls, and GFLOP/s for the
 * convolutions (2 * MACs from the shapes).
 */
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { HarDNet } from '../worker/model/hardnet.js';
import { computeGradients } from '../worker/train/step.js';
import { createMomentum } from '../worker/optim/momentum.js';
import { FlatParameters } from '../worker/model/flat_params.js';
import { selectBackend, type BackendName } from '../worker/backend/select.js';
import { profileStep } from './profile.js';

const o = new Command('bench:model')
  .option('--model <name>', 'architecture', 'HarDNet68')
  .option('--batch <n>', 'images per step', '8')
  .option('--image_size <n>', 'input size', '224')
  .option('--classes_num <n>', 'classes', '1000')
  .option('--backend <name>', 'auto | tensorflow | wasm | cpu', 'wasm')
  .option('--steps <n>', 'timed steps', '5')
  .option('--warmup <n>', 'untimed steps first', '2')
  .option('--json', 'one JSON object')
  .option('--profile', 'per-kernel time of one forward+backward (tf.profile)')
  .option('--train_only', 'skip the forward-only timing')
  .parse()
  .opts();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** CPU seconds this process has used (all its threads): on a shared machine, unlike wall time, it leaves out the
 * time another process held the core */
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const cpuTimes: number[] = [];

async function timeSteps(n: number, warmup: number, step: () => Promise<void>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await step();
  const times: number[] = [];
  cpuTimes.length = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const c0 = cpuSeconds();
    await step();
    times.push((performance.now() - t0) / 1000);
    cpuTimes.push(cpuSeconds() - c0);
  }
  return times;
}

const backend = await selectBackend(o.backend as BackendName, {
  gpuAssigned: false,
  log: (m: string) => {
    if (!o.json) console.log(m);
  },
});
const batch = Number(o.batch);
const size = Number(o.image_size);
const classes = Number(o.classes_num);
const model = new HarDNet(o.model, classes, 1);
const x = tf.randomNormal([batch, size, size, 3]) as tf.Tensor4D;
const labels = tf.tensor1d(
  Array.from({ length: batch }, (_, i) => i % classes),
  'int32',
);
const parameters = new FlatParameters(model.weights);
const opt = createMomentum(parameters, { momentum: 0.9, l2Decay: 5e-5 });

const fwd = o.train_only
  ? [NaN]
  : await timeSteps(Number(o.steps), Number(o.warmup), async () => {
      const y = model.forward(x, { training: false });
      await y.data();
      y.dispose();
    });
// the step as the training loop runs it: gradients packed into the flat parameters, BN statistics, one optimizer pass
const updateTimes: number[] = [];
const fwdCpu = [...cpuTimes];
const train = await timeSteps(Number(o.steps), Number(o.warmup), async () => {
  const r = computeGradients(model, x, labels);
  await r.loss.data();
  const t0 = performance.now();
  parameters.packGradients(r.grads);
  model.updateBatchNormStats(r.batchStats);
  opt.step(0.01);
  updateTimes.push((performance.now() - t0) / 1000);
  tf.dispose([r.loss, r.logits, ...r.grads.values()]);
});
const result = {
  model: model.variant.name,
  batch,
  image_size: size,
  backend: backend.name,
  forward_ips: batch / median(fwd),
  train_ips: batch / median(train),
  forward_step_s: median(fwd),
  train_step_s: median(train),
  // CPU seconds per step (median): what the step costs when the machine is shared
  forward_cpu_s: o.train_only ? NaN : median(fwdCpu),
  train_cpu_s: median(cpuTimes),
  // gradients gathered, BN statistics folded in, optimizer applied (the warm-up steps left out)
  train_update_s: median(updateTimes.slice(Number(o.warmup))),
  peak_rss_mb: process.resourceUsage().maxRSS / 1024,
};
if (o.json) console.log(JSON.stringify(result));
else {
  console.log(`${result.model} batch ${batch} @${size} on ${result.backend}:`);
  console.log(
    `  forward     ${result.forward_ips.toFixed(2)} images/s  (${(result.forward_step_s * 1000).toFixed(0)} ms/step)`,
  );
  console.log(
    `  train step  ${result.train_ips.toFixed(2)} images/s  (${(result.train_step_s * 1000).toFixed(0)} ms/step, of which ${(result.train_update_s * 1000).toFixed(1)} ms gradients + BN statistics + optimizer)`,
  );
  console.log(
    `  CPU time    forward ${(result.forward_cpu_s * 1000).toFixed(0)} ms/step, train ${(result.train_cpu_s * 1000).toFixed(0)} ms/step`,
  );
  console.log(`  peak RSS    ${result.peak_rss_mb.toFixed(0)} MB`);
}

if (o.profile)
  await profileStep(
    () => {
      const r = computeGradients(model, x, labels);
      return [r.loss, r.logits, ...r.grads.values(), ...r.batchStats.flatMap((b) => [b.mean, b.variance])];
    },
    { json: Boolean(o.json) },
  );
