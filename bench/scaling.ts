/**
 * npm run bench:scaling -- [--np 1,2] [--batch 64] [--model HarDNet39ds] [--image_size 32] [--steps 40] [--json]
 *
 * Data-parallel scaling on this machine: `launch --nproc_per_node N train` on the bundled Fashion-MNIST with the
 * same per-worker batch for every N, timed from rank 0's metrics.jsonl (steps after the first 5), so it measures
 * the real job: data loading, forward+backward, the ZeroMQ all-reduce and the optimizer.
 */
import { Command } from 'commander';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const o = new Command('bench:scaling')
  .option('--np <list>', 'worker counts', '1,2')
  .option('--batch <n>', 'per-worker batch', '64')
  .option('--model <name>', 'architecture', 'HarDNet39ds')
  .option('--image_size <n>', 'input size', '32')
  .option('--steps <n>', 'steps per run', '40')
  .option('--json', 'one JSON object per line')
  .parse()
  .opts();

const launch = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../launcher/cli.js');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const perWorker = Number(o.batch);
const steps = Number(o.steps);
const rows: { np: number; images_per_s: number; step_s: number; allreduce_s: number; compute_s: number; data_s: number }[] = [];
for (const np of String(o.np).split(',').map(Number)) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-scaling-'));
  const global = perWorker * np;
  const overrides = [
    `ARCHITECTURE.name=${o.model}`, `TRAIN.batch_size=${global}`, `total_images=${global * steps}`, 'epochs=1', 'validate=False',
    `model_save_dir=${dir}`, 'print_interval=1000', 'backend=wasm',
    `TRAIN.transforms.1.ResizeImage.size=${o.image_size}`,
  ];
  const r = spawnSync(process.execPath, [launch, '--nproc_per_node', String(np), '--log_dir', path.join(dir, 'log'), 'train', ...overrides.flatMap((x) => ['-o', x])], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`launch with ${np} workers failed:\n${r.stdout}\n${r.stderr}`);
  const metricsFile = fs.readdirSync(dir).map((d) => path.join(dir, d, 'metrics.jsonl')).find((f) => fs.existsSync(f))!;
  const recs = fs.readFileSync(metricsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((m) => m.mode === 'train' && !m.end && m.step >= 5 && m.step < steps);
  // per-step wall time is the sum of its parts as the loop measures them
  const stepS = median(recs.map((m) => m.data_s + m.compute_s + m.allreduce_s + m.optimizer_s));
  rows.push({
    np, images_per_s: global / stepS, step_s: stepS,
    allreduce_s: median(recs.map((m) => m.allreduce_s)), compute_s: median(recs.map((m) => m.compute_s)), data_s: median(recs.map((m) => m.data_s)),
  });
  fs.rmSync(dir, { recursive: true, force: true });
}
const base = rows[0];
for (const r of rows) {
  const line = { ...r, model: o.model, per_worker_batch: perWorker, image_size: Number(o.image_size), speedup: r.images_per_s / base.images_per_s };
  if (o.json) console.log(JSON.stringify(line));
  else console.log(`np ${r.np}: ${r.images_per_s.toFixed(1)} images/s (step ${(r.step_s * 1000).toFixed(0)} ms: data ${(r.data_s * 1000).toFixed(0)}, ` +
    `fwd+bwd ${(r.compute_s * 1000).toFixed(0)}, all-reduce ${(r.allreduce_s * 1000).toFixed(0)} ms), ${line.speedup.toFixed(2)}x the images/s of ${base.np} worker(s)`);
}
