/**
 * ZeRO stage 1 (sharded optimizer) against the plain update, in one worker of a real ring: `steps` sharded steps
 * must give the weights of `steps` plain steps bit for bit, and a checkpoint of the sharded run (velocities
 * gathered, written by rank 0) resumed for `steps` more must give those of 2 * `steps` plain steps.
 *   node sharded_worker.js '{"backend": "wasm" | "cpu", "steps": k, "dir": DIR, "resumeFrom"?: DIR}'
 * The gradients are made on the host from the rank, the step and the current weights (g = noise + 0.1 w), so
 * they are the same on both backends and a wrong weight anywhere changes every later step. Prints `RESULT <json>`.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readWorkerEnv } from '../../shared/env.js';
import { loadCheckpoint, saveCheckpoint } from '../../worker/checkpoint/checkpoint.js';
import { createProcessGroup, type ProcessGroup } from '../../worker/collectives/index.js';
import { FlatParameters } from '../../worker/model/flat_params.js';
import { HarDNet } from '../../worker/model/hardnet.js';
import { createMomentum, type Optimizer } from '../../worker/optim/momentum.js';
import { useBackend } from './backend.js';
import { value } from './collective_data.js';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  backend: 'wasm' | 'cpu';
  steps: number;
  dir: string;
  resumeFrom?: string;
  wireDtype?: 'float32' | 'float16';
};
const env = readWorkerEnv();
const sha = (a: Float32Array) =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');

function gradients(p: FlatParameters, step: number): void {
  p.packWeights(); // current already, but for an update on the device
  const w = p.weights;
  const g = p.gradients;
  for (let j = 0; j < g.length; j++) g[j] = 0.01 * value(env.rank + 10 * step, 1001, j % 1001) + 0.1 * w[j];
}

async function plainStep(group: ProcessGroup, opt: Optimizer, step: number): Promise<void> {
  gradients(opt.params, step);
  await group.allReduce(opt.params.gradients, 'mean');
  opt.step(0.05);
}

async function shardedStep(group: ProcessGroup, opt: Optimizer, step: number): Promise<void> {
  const p = opt.params;
  gradients(p, step);
  await group.reduceScatter(p.gradients, 'mean');
  const [start, end] = group.ownedSegment(p.size);
  opt.stepSegment(0.05, start, end);
  await group.allGatherInPlace(p.weights);
  p.unpackWeights();
}

function velocitySha(opt: Optimizer): string {
  const v = opt.velocityTensors();
  const all = new Float32Array(opt.size);
  let o = 0;
  for (const t of v.values()) {
    all.set(t.dataSync() as Float32Array, o);
    o += t.size;
  }
  tf.dispose([...v.values()]);
  return sha(all);
}

function weightSha(opt: Optimizer): string {
  opt.params.packWeights();
  return sha(opt.params.weights);
}

async function main() {
  await useBackend(args.backend);
  const group = await createProcessGroup(env, { timeoutMs: 120_000, wireDtype: args.wireDtype });
  const k = args.steps;
  const make = (seed: number) => {
    const model = new HarDNet('HarDNet39ds', 10, seed);
    return { model, opt: createMomentum(new FlatParameters(model.weights), { momentum: 0.9, l2Decay: 5e-5 }) };
  };
  try {
    const plain = make(0);
    const sharded = make(0);
    for (let i = 0; i < k; i++) {
      await plainStep(group, plain.opt, i);
      await shardedStep(group, sharded.opt, i);
    }
    // the checkpoint of the sharded run after k steps, as train.ts writes it: velocities gathered first
    await sharded.opt.gatherVelocities((v) => group.allGatherInPlace(v));
    const atK = {
      plain: { weights: weightSha(plain.opt), velocities: velocitySha(plain.opt) },
      sharded: { weights: weightSha(sharded.opt), velocities: velocitySha(sharded.opt) },
    };
    for (let i = k; i < 2 * k; i++) await plainStep(group, plain.opt, i);
    const dir = path.join(args.dir, String(k));
    if (!args.resumeFrom && env.rank === 0)
      await saveCheckpoint(dir, sharded.model, sharded.opt, {
        epoch: 0,
        iteration: k,
        bestTop1: 0,
        bestEpoch: -1,
        model: 'HarDNet39ds',
        classesNum: 10,
      });
    await group.barrier();
    // resumed into a model initialised otherwise, on this run's backend
    const resumed = make(1);
    loadCheckpoint(args.resumeFrom ?? dir, resumed.model, resumed.opt);
    for (let i = k; i < 2 * k; i++) await shardedStep(group, resumed.opt, i);
    await resumed.opt.gatherVelocities((v) => group.allGatherInPlace(v));
    return {
      atK,
      plain: { weights: weightSha(plain.opt), velocities: velocitySha(plain.opt) },
      resumed: { weights: weightSha(resumed.opt), velocities: velocitySha(resumed.opt) },
    };
  } finally {
    await group.close();
  }
}

main().then(
  (r) => process.stdout.write(`RESULT ${JSON.stringify({ rank: env.rank, ...r })}\n`),
  (err) => {
    process.stdout.write(`ERROR ${JSON.stringify({ message: (err as Error).stack })}\n`);
    process.exitCode = 1;
  },
);
