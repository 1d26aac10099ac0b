/**
 * npm run bench:scaling -- [--np 1,2] [--batch 64] [--model HarDNet39ds] [--image_size 32] [--epochs 3] [--repeat 1]
 *                           [--independent] [--override key=value ...] [--json]
 *
 * Data-parallel scaling on this machine: `launch --nproc_per_node N train` on the bundled Fashion-MNIST (5,000
 * images) with the same per-worker batch for every N, timed from rank 0's metrics.jsonl (median step, the first
 * 5 steps of each epoch left out), so it measures the real job: data loading, forward+backward, the all-reduce
 * and the optimizer. One row per epoch: epoch 0 decodes every image; later epochs take more and more of them
 * from the decode cache (each worker keeps the images it has decoded; with N workers it has seen 1 - (1-1/N)^k
 * of them after k epochs).
 * This VM's speed drifts by 10-30 % from minute to minute: --repeat R runs every worker count R times, interleaved,
 * and reports the median images/s of each (worker count, epoch).
 * --independent separates what the job loses from what the machine does: for each N > 1 it also runs N separate
 * 1-worker jobs at the same time (no collectives, nothing shared) and reports their summed images/s, the most that N
 * processes get from this machine, and each N-worker row as a share of it. On a VM whose cores slow each other
 * down (shared caches, memory bandwidth, host scheduling) that ceiling is well under N x one worker.
 * With --repeat, each N-worker row also gives the ratio of every repetition's job to the independent jobs run right
 * after it (paired by repetition): the two halves of a pair run within a minute of each other, so a drift between
 * repetitions cancels in their ratio, and the spread of these ratios shows how far the machine moved within a pair,
 * which the ratio of two medians hides.
 * --override passes config overrides to every job (`-o key=value` of `launch train`), e.g. sharded_optimizer=True.
 */
import { Command } from 'commander';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const o = new Command('bench:scaling')
  .option('--np <list>', 'worker counts', '1,2')
  .option('--batch <n>', 'per-worker batch', '64')
  .option('--model <name>', 'architecture', 'HarDNet39ds')
  .option('--image_size <n>', 'input size', '32')
  .option('--epochs <n>', 'epochs per run (one row each)', '3')
  .option('--repeat <n>', 'runs per worker count, interleaved; medians are reported', '1')
  .option(
    '--independent',
    "also run N separate 1-worker jobs at once for each N > 1: the machine's ceiling for N processes",
  )
  .option('--override <key=value...>', 'config overrides for every job (launch train -o)', [])
  .option('--json', 'one JSON object per line')
  .parse()
  .opts();

const launch = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../launcher/cli.js');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const perWorker = Number(o.batch);
const epochs = Number(o.epochs);
interface Row {
  np: number;
  independent: boolean;
  /** the repetition (0-based) this run belongs to */
  rep: number;
  epoch: number;
  images_per_s: number;
  step_s: number;
  allreduce_s: number;
  compute_s: number;
  data_s: number;
}

/** One `launch --nproc_per_node np train` with `np` x the per-worker batch; resolves to its rows, one per epoch. */
async function launchJob(np: number): Promise<Omit<Row, 'independent' | 'rep'>[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-scaling-'));
  const global = perWorker * np;
  const overrides = [
    `ARCHITECTURE.name=${o.model}`,
    `TRAIN.batch_size=${global}`,
    `epochs=${epochs}`,
    'validate=False',
    `model_save_dir=${dir}`,
    'print_interval=1000',
    'backend=wasm',
    'save_interval=1000',
    `TRAIN.transforms.1.ResizeImage.size=${o.image_size}`,
    ...(o.override as string[]),
  ];
  let recs: { epoch: number; data_s: number; compute_s: number; allreduce_s: number; optimizer_s: number }[];
  try {
    const child = spawn(
      process.execPath,
      [
        launch,
        '--nproc_per_node',
        String(np),
        '--log_dir',
        path.join(dir, 'log'),
        'train',
        ...overrides.flatMap((x) => ['-o', x]),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    const [status] = (await once(child, 'close')) as [number | null]; // 'close': its output is all read by then
    if (status !== 0) throw new Error(`launch with ${np} workers failed:\n${output}`);
    const metricsFile = fs
      .readdirSync(dir)
      .map((d) => path.join(dir, d, 'metrics.jsonl'))
      .find((f) => fs.existsSync(f))!;
    recs = fs
      .readFileSync(metricsFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((m) => m.mode === 'train' && !m.end && m.step >= 5);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return Array.from({ length: epochs }, (_, epoch) => {
    const mine = recs.filter((m) => m.epoch === epoch);
    // per-step wall time is the sum of its parts as the loop measures them
    const stepS = median(mine.map((m) => m.data_s + m.compute_s + m.allreduce_s + m.optimizer_s));
    return {
      np,
      epoch,
      images_per_s: global / stepS,
      step_s: stepS,
      allreduce_s: median(mine.map((m) => m.allreduce_s)),
      compute_s: median(mine.map((m) => m.compute_s)),
      data_s: median(mine.map((m) => m.data_s)),
    };
  });
}

/**
 * --independent: `np` separate 1-worker jobs at the same time, no collectives between them. Their summed images/s
 * is what this machine gives np processes doing this work, the ceiling of any np-worker data-parallel run on it.
 */
async function independentJobs(np: number, rep: number): Promise<Row[]> {
  // allSettled: when one job fails the others still run to their end, not on into the next measurement
  const settled = await Promise.allSettled(Array.from({ length: np }, () => launchJob(1)));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  const jobs = settled.map((r) => (r as PromiseFulfilledResult<Omit<Row, 'independent' | 'rep'>[]>).value);
  return jobs[0].map((first, epoch) => ({
    ...first,
    np,
    independent: true,
    rep,
    images_per_s: jobs.reduce((sum, job) => sum + job[epoch].images_per_s, 0),
  }));
}

const runs: Row[] = [];
const nps = String(o.np).split(',').map(Number);
for (let rep = 0; rep < Number(o.repeat); rep++) {
  for (const np of nps) {
    runs.push(...(await launchJob(np)).map((r) => ({ ...r, independent: false, rep })));
    if (o.independent && np > 1) runs.push(...(await independentJobs(np, rep)));
  }
}
/** every repetition's row of one (worker count, mode, epoch), in the order they ran */
const runsOf = (np: number, independent: boolean, epoch: number) =>
  runs.filter((r) => r.np === np && r.independent === independent && r.epoch === epoch);
// the run with the median images/s of each (worker count, mode, epoch)
const rows: Row[] = [];
for (const np of nps) {
  for (const independent of o.independent && np > 1 ? [false, true] : [false]) {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const same = runsOf(np, independent, epoch).sort((a, b) => a.images_per_s - b.images_per_s);
      rows.push(same[Math.floor(same.length / 2)]);
    }
  }
}
for (const r of rows) {
  const base = rows.find((b) => b.epoch === r.epoch)!;
  const line = {
    ...r,
    model: o.model,
    per_worker_batch: perWorker,
    image_size: Number(o.image_size),
    speedup: r.images_per_s / base.images_per_s,
  };
  const same = runsOf(r.np, r.independent, r.epoch);
  const all = same.map((x) => x.images_per_s);
  const ceiling = rows.find((c) => c.np === r.np && c.independent && c.epoch === r.epoch);
  // each repetition's job against the independent jobs of the same repetition (run right after it)
  const independentRuns = !r.independent && ceiling ? runsOf(r.np, true, r.epoch) : [];
  const paired = independentRuns.map((ind) => same.find((job) => job.rep === ind.rep)!.images_per_s / ind.images_per_s);
  if (o.json) {
    console.log(JSON.stringify({ ...line, runs: all, ...(paired.length ? { paired_share: paired } : {}) }));
    continue;
  }
  const ofCeiling =
    !r.independent && ceiling
      ? `, ${((100 * r.images_per_s) / ceiling.images_per_s).toFixed(0)} % of ${r.np} independent jobs` +
        (paired.length > 1
          ? ` (paired by repetition: ${paired.map((x) => (100 * x).toFixed(0)).join(', ')} %, median ${(100 * median(paired)).toFixed(0)} %)`
          : '')
      : '';
  const name = r.independent ? `${r.np} x 1 independent` : `np ${r.np}`;
  console.log(
    `${name} epoch ${r.epoch}: ${r.images_per_s.toFixed(1)} images/s${all.length > 1 ? ` (median of ${all.map((x) => x.toFixed(0)).join(', ')})` : ''} (step ${(r.step_s * 1000).toFixed(0)} ms: data ${(r.data_s * 1000).toFixed(0)}, ` +
      `fwd+bwd ${(r.compute_s * 1000).toFixed(0)}, all-reduce ${(r.allreduce_s * 1000).toFixed(0)} ms), ${line.speedup.toFixed(2)}x the images/s of ${base.np} worker(s)${ofCeiling}`,
  );
}
