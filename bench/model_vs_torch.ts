/**
 * npm run bench:model-vs-torch -- [--model HarDNet68] [--batch 8] [--image_size 224] [--workers 2] [--threads 2]
 *                                 [--repeat 3] [--steps 5] [--warmup 2] [--json]
 *
 * This project's training step beside PyTorch's on the same cores in the same minutes: each round runs
 * `bench:model --train_only` as `--workers` processes at once (one per core, as `launch --nproc_per_node` runs them,
 * summed images/s) and bench/torch_hardnet_train.py (the official model, Debian's python3-torch) with `--threads`
 * threads, the order alternating from round to round so that a drift of the machine hits both alike. Prints every
 * round and the medians, and ours / PyTorch.
 */
import { Command } from 'commander';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const o = new Command('bench:model-vs-torch')
  .option('--model <name>', 'HarDNet68 or HarDNet39ds', 'HarDNet68')
  .option('--batch <n>', "images per step (per worker, and PyTorch's batch)", '8')
  .option('--image_size <n>', 'input size', '224')
  .option('--workers <n>', 'our processes at once', '2')
  .option('--threads <n>', 'PyTorch threads', '2')
  .option('--repeat <n>', 'rounds', '3')
  .option('--steps <n>', 'timed steps per run', '5')
  .option('--warmup <n>', 'untimed steps first', '2')
  .option('--python <path>', 'the interpreter with torch', '/usr/bin/python3')
  .option('--baseline <model.js>', "also run this build of bench/model.js (e.g. an older checkout's dist) each round")
  .option('--json', 'one JSON object per round and one for the medians')
  .parse()
  .opts();

const here = path.dirname(fileURLToPath(import.meta.url));
const torchScript = path.resolve(here, '../../bench/torch_hardnet_train.py');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs a command to its end; its last stdout line parsed as JSON. */
async function runJson(cmd: string, args: string[]): Promise<Record<string, number>> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const [status] = (await once(child, 'close')) as [number | null];
  if (status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${status}:\n${err || out}`);
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
}

const common = ['--batch', o.batch, '--image_size', o.image_size, '--steps', o.steps, '--warmup', o.warmup, '--json'];
async function ours(script = path.join(here, 'model.js')): Promise<number> {
  const runs = Array.from({ length: Number(o.workers) }, () =>
    runJson(process.execPath, [script, '--model', o.model, '--backend', 'wasm', '--train_only', ...common]),
  );
  return (await Promise.all(runs)).reduce((a, r) => a + r.train_ips!, 0);
}
async function torch(): Promise<number> {
  const arch = String(o.model).replace(/^HarDNet/, '');
  return (await runJson(o.python, [torchScript, '--arch', arch, '--threads', o.threads, ...common])).train_ips!;
}

const oursIps: number[] = [];
const torchIps: number[] = [];
const baseIps: number[] = [];
for (let round = 0; round < Number(o.repeat); round++) {
  const t0 = new Date().toISOString().slice(11, 19);
  let a = 0,
    b = 0,
    c = NaN;
  const runs: (() => Promise<void>)[] = [
    async () => {
      a = await ours();
    },
    async () => {
      b = await torch();
    },
  ];
  if (o.baseline)
    runs.push(async () => {
      c = await ours(String(o.baseline));
    });
  if (round % 2 === 1) runs.reverse();
  for (const run of runs) await run();
  oursIps.push(a);
  torchIps.push(b);
  if (o.baseline) baseIps.push(c);
  const row = {
    round,
    utc: t0,
    ours_images_per_s: a,
    torch_images_per_s: b,
    ratio: a / b,
    ...(o.baseline ? { baseline_images_per_s: c, baseline_ratio: c / b } : {}),
  };
  console.log(
    o.json
      ? JSON.stringify(row)
      : `round ${round} (${t0} UTC): ours ${o.workers} workers ${a.toFixed(2)} images/s, PyTorch ${o.threads} threads ${b.toFixed(2)}, ratio ${(a / b).toFixed(2)}` +
          (o.baseline ? `; baseline ${c.toFixed(2)} images/s, ratio ${(c / b).toFixed(2)}` : ''),
  );
}
const summary = {
  model: o.model,
  batch: Number(o.batch),
  image_size: Number(o.image_size),
  workers: Number(o.workers),
  threads: Number(o.threads),
  ours_median: median(oursIps),
  torch_median: median(torchIps),
  ratio_of_medians: median(oursIps) / median(torchIps),
  median_ratio: median(oursIps.map((x, i) => x / torchIps[i]!)),
  ...(o.baseline
    ? { baseline_median: median(baseIps), baseline_median_ratio: median(baseIps.map((x, i) => x / torchIps[i]!)) }
    : {}),
};
console.log(
  o.json
    ? JSON.stringify(summary)
    : `medians: ours ${summary.ours_median.toFixed(2)} images/s, PyTorch ${summary.torch_median.toFixed(2)}; ratio of medians ${summary.ratio_of_medians.toFixed(2)}, median of round ratios ${summary.median_ratio.toFixed(2)}` +
        (o.baseline
          ? `; baseline median ${summary.baseline_median!.toFixed(2)}, median of its round ratios ${summary.baseline_median_ratio!.toFixed(2)}`
          : ''),
);
