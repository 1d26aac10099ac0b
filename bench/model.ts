/**
 * npm run bench:model -- --model HarDNet68 --batch 8 --image_size 224 --backend wasm [--steps 5] [--warmup 2] [--json]
 *
 * Forward (eval mode) and training-step (forward + backward + Momentum update + BN statistics) images/s, each the
 * median over the timed steps after warm-up, and the process's peak RSS.
 */
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { HarDNet } from '../worker/model/hardnet.js';
import { computeGradients } from '../worker/train/step.js';
import { createMomentum } from '../worker/optim/momentum.js';
import { GradientBuffer } from '../worker/train/grads.js';
import { selectBackend, type BackendName } from '../worker/backend/select.js';

const o = new Command('bench:model')
  .option('--model <name>', 'architecture', 'HarDNet68')
  .option('--batch <n>', 'images per step', '8')
  .option('--image_size <n>', 'input size', '224')
  .option('--classes_num <n>', 'classes', '1000')
  .option('--backend <name>', 'auto | tensorflow | wasm | cpu', 'wasm')
  .option('--steps <n>', 'timed steps', '5')
  .option('--warmup <n>', 'untimed steps first', '2')
  .option('--json', 'one JSON object')
  .parse()
  .opts();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeSteps(n: number, warmup: number, step: () => Promise<void>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await step();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await step();
    times.push((performance.now() - t0) / 1000);
  }
  return times;
}

const backend = await selectBackend(o.backend as BackendName, { gpuAssigned: false, log: (m: string) => { if (!o.json) console.log(m); } });
const batch = Number(o.batch);
const size = Number(o.image_size);
const classes = Number(o.classes_num);
const model = new HarDNet(o.model, classes, 1);
const x = tf.randomNormal([batch, size, size, 3]) as tf.Tensor4D;
const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % classes), 'int32');
const opt = createMomentum(model.weights, { momentum: 0.9, l2Decay: 5e-5 });

const fwd = await timeSteps(Number(o.steps), Number(o.warmup), async () => {
  const y = model.forward(x, { training: false });
  await y.data();
  y.dispose();
});
// the step as the training loop runs it: gradients into the fused buffer, BN statistics, one optimizer pass
const grads = new GradientBuffer(model.weights, opt.gradientStorage);
const updateTimes: number[] = [];
const train = await timeSteps(Number(o.steps), Number(o.warmup), async () => {
  const r = computeGradients(model, x, labels);
  await r.loss.data();
  const t0 = performance.now();
  grads.gather(r.grads);
  model.updateBatchNormStats(r.batchStats);
  opt.apply(grads.flat, 0.01);
  updateTimes.push((performance.now() - t0) / 1000);
  tf.dispose([r.loss, r.logits, ...r.grads.values()]);
});
const result = {
  model: model.variant.name, batch, image_size: size, backend: backend.name,
  forward_ips: batch / median(fwd), train_ips: batch / median(train),
  forward_step_s: median(fwd), train_step_s: median(train),
  // gradients gathered, BN statistics folded in, optimizer applied (the warm-up steps left out)
  train_update_s: median(updateTimes.slice(Number(o.warmup))),
  peak_rss_mb: process.resourceUsage().maxRSS / 1024,
};
if (o.json) console.log(JSON.stringify(result));
else {
  console.log(`${result.model} batch ${batch} @${size} on ${result.backend}:`);
  console.log(`  forward     ${result.forward_ips.toFixed(2)} images/s  (${(result.forward_step_s * 1000).toFixed(0)} ms/step)`);
  console.log(`  train step  ${result.train_ips.toFixed(2)} images/s  (${(result.train_step_s * 1000).toFixed(0)} ms/step, of which ${(result.train_update_s * 1000).toFixed(1)} ms gradients + BN statistics + optimizer)`);
  console.log(`  peak RSS    ${result.peak_rss_mb.toFixed(0)} MB`);
}
