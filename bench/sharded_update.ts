/**
 * npm run bench:sharded-update -- [--np 2] [--model HarDNet39ds] [--classes 10] [--reps 40] [--json]
 *
 * The part of a training step that sharded_optimizer changes, in N real worker processes (spawned as the launcher
 * does, ipc:// with shared memory), the two ways alternated step by step in the same processes so that a drifting
 * machine slows both alike: plain (allReduce of the gradients, the whole Momentum pass, the weights assigned) and
 * sharded (reduceScatter, the pass over this rank's segment, allGatherInPlace of the weights, the weights
 * assigned). Each repetition starts at a barrier and is timed on every rank; reported: the median over repetitions
 * of the slowest rank's wall time, and each rank's CPU time per step (process.cpuUsage: what the step costs when
 * the machine is shared).
 */
import { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { readWorkerEnv } from '../shared/env.js';
import { spawnGroup } from '../test/helpers/spawn_group.js';
import { selectBackend } from '../worker/backend/select.js';
import { createProcessGroup, type ProcessGroup } from '../worker/collectives/index.js';
import { FlatParameters } from '../worker/model/flat_params.js';
import { HarDNet } from '../worker/model/hardnet.js';
import { createMomentum, type Optimizer } from '../worker/optim/momentum.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const script = fileURLToPath(import.meta.url);

interface Args {
  model: string;
  classes: number;
  reps: number;
}

async function plain(group: ProcessGroup, opt: Optimizer): Promise<void> {
  await group.allReduce(opt.params.gradients, 'mean');
  opt.step(0.01);
}

async function sharded(group: ProcessGroup, opt: Optimizer): Promise<void> {
  const p = opt.params;
  await group.reduceScatter(p.gradients, 'mean');
  const [start, end] = group.ownedSegment(p.size);
  opt.stepSegment(0.01, start, end);
  await group.allGatherInPlace(p.weights);
  p.unpackWeights();
}

async function worker(a: Args): Promise<void> {
  await selectBackend('wasm', { gpuAssigned: false, log: () => {} });
  const env = readWorkerEnv();
  const group = await createProcessGroup(env, { timeoutMs: 120_000 });
  const modes = { plain, sharded };
  const runs = Object.entries(modes).map(([name, run]) => {
    const model = new HarDNet(a.model, a.classes, 0);
    const opt = createMomentum(new FlatParameters(model.weights), { momentum: 0.9, l2Decay: 5e-5 });
    const grads = Float32Array.from({ length: opt.size }, (_, i) => Math.sin(i + env.rank) * 1e-3);
    return { name, run, opt, grads, wall: [] as number[], cpu: [] as number[] };
  });
  for (let rep = 0; rep < a.reps + 3; rep++) {
    for (const r of runs) {
      r.opt.params.gradients.set(r.grads); // what packGradients does, the same in both modes: not timed
      await group.barrier();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await r.run(group, r.opt);
      if (rep >= 3) {
        r.wall.push(performance.now() - t0);
        const c = process.cpuUsage(cpu0);
        r.cpu.push((c.user + c.system) / 1000);
      }
    }
  }
  const gathered = await group.allGather(runs.flatMap((r) => [...r.wall, median(r.cpu)]));
  await group.close();
  if (env.rank !== 0) return;
  const out: Record<string, unknown> = {
    model: a.model,
    classes: a.classes,
    np: env.worldSize,
    params: runs[0].opt.size,
  };
  runs.forEach((r, k) => {
    const at = k * (a.reps + 1);
    const slowest = r.wall.map((_, i) => Math.max(...gathered.map((g) => g[at + i])));
    out[r.name] = {
      wall_ms: median(slowest),
      cpu_ms_per_rank: gathered.map((g) => g[at + a.reps]),
    };
  });
  process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
}

if (process.env.RANK !== undefined) {
  await worker(JSON.parse(process.argv[2]!) as Args);
} else {
  const o = new Command('bench:sharded-update')
    .option('--np <n>', 'workers', '2')
    .option('--model <name>', 'architecture', 'HarDNet39ds')
    .option('--classes <n>', 'classes (the head is part of the parameters)', '10')
    .option('--reps <n>', 'timed repetitions of each mode', '40')
    .option('--json', 'the result as one JSON line')
    .parse()
    .opts();
  const args: Args = { model: o.model, classes: Number(o.classes), reps: Number(o.reps) };
  const g = await spawnGroup({ np: Number(o.np), script, args: [JSON.stringify(args)] });
  const out = await g.done;
  for (const r of out) if (r.code !== 0) throw new Error(`rank ${r.rank} failed: ${r.stderr.slice(-2000)}`);
  type Timing = { wall_ms: number; cpu_ms_per_rank: number[] };
  const res = out[0].result as { model: string; params: number; np: number; plain: Timing; sharded: Timing };
  if (o.json) console.log(JSON.stringify(res));
  else {
    console.log(`${res.model} (${res.params} parameters), ${res.np} workers, median of ${args.reps} steps each:`);
    for (const m of ['plain', 'sharded'] as const)
      console.log(
        `  ${m.padEnd(8)} ${res[m].wall_ms.toFixed(1)} ms (slowest rank), CPU ${res[m].cpu_ms_per_rank.map((c: number) => c.toFixed(1)).join(' / ')} ms per rank`,
      );
  }
}
