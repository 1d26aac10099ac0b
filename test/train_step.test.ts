import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs-core';
import { HarDNet, type BatchStats } from '../worker/model/hardnet.js';
import { computeGradients, trainStep, type StepParts } from '../worker/train/step.js';
import { SoloGroup } from '../worker/collectives/process_group.js';
import type { Batch } from '../worker/data/loader.js';
import { mixSeed } from '../shared/rng.js';
import { FlatParameters } from '../worker/model/flat_params.js';
import { Momentum } from '../worker/optim/momentum.js';
import { topkCorrect } from '../worker/train/metrics.js';
import { useBackend } from './helpers/backend.js';

before(async () => {
  await useBackend('wasm');
});

/** One whole training step as the loop runs it: gradients, packed into the flat parameters, optimizer, BN statistics, metrics. */
async function step(model: HarDNet, opt: Momentum, i: number): Promise<number> {
  const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', i) as tf.Tensor4D;
  const labels = Int32Array.from([0, 1, 2, 3]);
  const y = tf.tensor1d(labels, 'int32');
  const r = computeGradients(model, x, y, { labelSmoothing: 0.1, seed: i });
  const [loss] = await r.loss.data();
  opt.params.packGradients(r.grads);
  opt.step(0.01);
  model.updateBatchNormStats(r.batchStats);
  await topkCorrect(r.logits, labels, 5);
  tf.dispose([x, y, r.loss, r.logits, ...r.grads.values()]);
  return loss;
}

test('a training step leaks no tensors: tf.memory().numTensors is flat from step to step', async () => {
  const model = new HarDNet('HarDNet39ds', 10, 0);
  const opt = new Momentum(new FlatParameters(model.weights), { momentum: 0.9, l2Decay: 1e-4 });
  await step(model, opt, 0); // first step creates the velocities and cached constants
  const counts: number[] = [];
  for (let i = 1; i <= 4; i++) {
    const loss = await step(model, opt, i);
    assert.ok(Number.isFinite(loss));
    counts.push(tf.memory().numTensors);
  }
  assert.deepEqual(counts, new Array(counts.length).fill(counts[0]), `tensor counts per step: ${counts.join(', ')}`);
  // and eval forward passes leak nothing either
  const input = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) tf.dispose(model.forward(input, { training: false }));
  assert.equal(tf.memory().numTensors, before, 'eval forward leaked');
  input.dispose();
  model.dispose();
});

test('the optimizer follows PaddleClas Momentum with L2 decay exactly', async () => {
  const p = tf.variable(tf.tensor1d([1, -2]));
  const params = new Map([['w', p]]);
  const opt = new Momentum(params, { momentum: 0.9, l2Decay: 0.1 });
  const g = tf.tensor1d([0.5, 0.5]);
  opt.apply(new Map([['w', g]]), 0.1);
  // g' = g + 0.1 w = [0.6, 0.3]; v = g'; w -= 0.1 v
  assert.deepEqual(
    Array.from(await p.data()).map((v) => +v.toFixed(6)),
    [0.94, -2.03],
  );
  opt.apply(new Map([['w', g]]), 0.1);
  // g' = [0.5 + 0.094, 0.5 - 0.203] = [0.594, 0.297]; v = 0.9 [0.6, 0.3] + g' = [1.134, 0.567]
  assert.deepEqual(
    Array.from(await p.data()).map((v) => +v.toFixed(5)),
    [+(0.94 - 0.1134).toFixed(5), +(-2.03 - 0.0567).toFixed(5)],
  );
  tf.dispose([p, g]);
});

/** The per-parameter tfjs ops the fused kernel replaced, kept here as the reference it must equal bit for bit. */
function referenceStep(
  p: tf.Variable,
  v: tf.Variable,
  g: tf.Tensor,
  lr: number,
  momentum: number,
  l2Decay: number,
): void {
  tf.tidy(() => {
    const decayed = l2Decay > 0 ? tf.add(g, tf.mul(p, l2Decay)) : g;
    const next = tf.add(tf.mul(v, momentum), decayed);
    v.assign(next);
    p.assign(tf.sub(p, tf.mul(next, lr)));
  });
}

for (const l2Decay of [0, 5e-5]) {
  test(`the fused Momentum step equals the per-parameter tfjs ops bit for bit (L2 ${l2Decay}), over odd sizes and many steps`, async () => {
    const shapes = [[3, 3, 5, 7], [1], [13], [2, 2, 2, 9]];
    const mk = (seed: number) =>
      new Map(shapes.map((s, i) => [`p${i}`, tf.variable(tf.randomNormal(s, 0, 1, 'float32', seed + i))]));
    const fused = mk(1);
    const ref = mk(1);
    const refV = new Map([...ref].map(([n, t]) => [n, tf.variable(tf.zerosLike(t), false)]));
    const opt = new Momentum(fused, { momentum: 0.9, l2Decay });
    for (let step = 0; step < 5; step++) {
      const lr = 0.1 / (step + 1);
      const grads = new Map(shapes.map((s, i) => [`p${i}`, tf.randomNormal(s, 0, 1, 'float32', 100 * step + i)]));
      // half the steps through a fused array (values after the parameters' are ignored)
      if (step % 2 === 0) {
        const flat = new Float32Array(opt.size + 1);
        let o = 0;
        for (const g of grads.values()) {
          flat.set(g.dataSync() as Float32Array, o);
          o += g.size;
        }
        opt.apply(flat, lr);
      } else {
        opt.apply(grads, lr);
      }
      for (const [n, g] of grads) referenceStep(ref.get(n)!, refV.get(n)!, g, lr, 0.9, l2Decay);
      tf.dispose([...grads.values()]);
    }
    for (const [n, p] of fused) {
      assert.deepEqual(Array.from(p.dataSync()), Array.from(ref.get(n)!.dataSync()), `weights of ${n}`);
    }
    const velocities = opt.velocityTensors();
    for (const [n, v] of velocities)
      assert.deepEqual(Array.from(v.dataSync()), Array.from(refV.get(n)!.dataSync()), `velocity of ${n}`);
    tf.dispose([...fused.values(), ...ref.values(), ...refV.values(), ...velocities.values()]);
  });
}

test('the optimizer re-reads a weight assigned by someone else, and restores saved velocities', async () => {
  const p = tf.variable(tf.tensor1d([1, 1, 1, 1, 1]));
  const params = new Map([['w', p]]);
  const opt = new Momentum(params, { momentum: 0.5, l2Decay: 0 });
  const g = new Float32Array([1, 1, 1, 1, 1]);
  opt.apply(g, 1); // v = 1, w = 0
  const saved = opt.velocityTensors();
  p.assign(tf.tensor1d([10, 10, 10, 10, 10])); // e.g. a checkpoint load or rank 0's broadcast
  opt.apply(g, 1); // v = 1.5, w = 10 - 1.5
  assert.deepEqual(Array.from(p.dataSync()), [8.5, 8.5, 8.5, 8.5, 8.5]);
  const other = new Momentum(params, { momentum: 0.5, l2Decay: 0 });
  other.loadVelocities(saved);
  other.apply(g, 1); // v = 0.5 * 1 + 1 = 1.5 from the restored velocity; w = 8.5 - 1.5
  assert.deepEqual(Array.from(p.dataSync()), [7, 7, 7, 7, 7]);
  assert.throws(
    () => other.loadVelocities(new Map([['nope', saved.get('w')!]]), 'ckpt/optimizer.json'),
    /ckpt\/optimizer\.json: optimizer velocity for unknown parameter 'nope'/,
  );
  assert.throws(() => other.apply(new Float32Array(3), 1), /3 gradient values for 5 parameters/);
  // same number of values, another shape: the values would land in the wrong order, so refused
  const transposed = new Map([['w', tf.zeros([5, 1])]]);
  assert.throws(
    () => other.loadVelocities(transposed, 'ckpt/optimizer.json'),
    /optimizer velocity 'w' has shape \[5,1\], the parameter \[5\]/,
  );
  assert.throws(
    () => other.apply(new Map([['w', tf.zeros([4])]]), 1),
    /gradient for parameter 'w' has shape \[4\], the parameter \[5\]/,
  );
  assert.throws(
    () => other.params.packGradients(new Map([['w', tf.zeros([6])]])),
    /gradient for parameter 'w' has shape \[6\], the parameter \[5\]/,
  );
  tf.dispose([p, ...saved.values(), ...transposed.values()]);
});

test('gradients packed into the flat parameters are updated in place and give the same update as a separate array', () => {
  const make = () =>
    new Map<string, tf.Variable>([
      [
        'a',
        tf.variable(
          tf.tensor2d([
            [1, 2, 3],
            [4, 5, 6],
          ]),
        ),
      ],
      ['b', tf.variable(tf.tensor1d([7, 8, 9, 10, 11]))],
    ]);
  const [p1, p2] = [make(), make()];
  const o1 = new Momentum(p1, { momentum: 0.9, l2Decay: 1e-4 });
  const flat = new FlatParameters(p2);
  const o2 = new Momentum(flat, { momentum: 0.9, l2Decay: 1e-4 });
  // the kernel works on the owner's memory: weights, gradients and velocities are views of one buffer
  assert.equal(flat.gradients.buffer, flat.memory.buffer);
  assert.equal(flat.weights.buffer, flat.memory.buffer);
  for (let step = 0; step < 3; step++) {
    const g = new Map([
      ['a', tf.fill([2, 3], 0.5 + step)],
      ['b', tf.linspace(-1, 1, 5)],
    ]);
    const separate = new Float32Array(11);
    separate.set(g.get('a')!.dataSync(), 0);
    separate.set(g.get('b')!.dataSync(), 6);
    flat.packGradients(g);
    assert.deepEqual(flat.gradients, separate);
    o1.apply(separate, 0.1);
    o2.step(0.1);
    // the weights region holds what the variables were assigned
    assert.deepEqual(flat.slice(flat.weights, 'b'), p2.get('b')!.dataSync());
    tf.dispose([...g.values()]);
  }
  for (const [n, v] of p1) assert.deepEqual(v.dataSync(), p2.get(n)!.dataSync(), n);
  // a region allocated now would grow the memory under the views handed out above
  assert.throws(() => flat.allocate(), /a region is allocated after views of the memory were handed out/);
  tf.dispose([...p1.values(), ...p2.values()]);
});

test('packWeights re-reads only the parameters assigned since, unpackWeights assigns every one', () => {
  const params = new Map<string, tf.Variable>([
    ['a', tf.variable(tf.tensor1d([1, 2, 3]))],
    ['b', tf.variable(tf.tensor2d([[4, 5]]))],
  ]);
  const flat = new FlatParameters(params);
  flat.packWeights();
  assert.deepEqual(Array.from(flat.weights), [1, 2, 3, 4, 5]);
  // a value changed behind the owner's back is kept while its variable is not reassigned: nothing is re-read
  flat.weights[0] = -1;
  flat.packWeights();
  assert.equal(flat.weights[0], -1);
  params.get('b')!.assign(tf.tensor2d([[40, 50]]));
  flat.packWeights();
  assert.deepEqual(Array.from(flat.weights), [-1, 2, 3, 40, 50]);
  flat.unpackWeights();
  assert.deepEqual(Array.from(params.get('a')!.dataSync()), [-1, 2, 3]);
  assert.deepEqual(params.get('b')!.shape, [1, 2]);
  assert.throws(() => flat.packGradients(new Map([['a', tf.zeros([3])]])), /no gradient for parameter 'b'/);
  assert.throws(
    () =>
      flat.packGradients(
        new Map([
          ['a', tf.zeros([3])],
          ['b', tf.zeros([1, 2])],
          ['c', tf.zeros([1])],
        ]),
      ),
    /gradient for unknown parameter 'c'/,
  );
  tf.dispose([...params.values()]);
});

/** PyTorch's nn.BatchNorm2d default, which the official HarDNet keeps; written here, not taken from the model */
const TORCH_BN_MOMENTUM = 0.1;

test('the BN running-statistics update equals the tfjs ops it replaced, bit for bit', async () => {
  const model = new HarDNet('HarDNet39ds', 10, 0);
  const x = tf.randomNormal([3, 32, 32, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  // two steps, so the second starts from running statistics that are no longer 0 and 1
  for (let i = 0; i < 2; i++) {
    const stats: BatchStats[] = [];
    tf.dispose(model.forward(x, { training: true, dropout: false, batchStats: stats }));
    const expected = stats.map((s) =>
      tf.tidy(() => {
        const mean = model.buffers.get(`${s.prefix}.norm.running_mean`)!;
        const variance = model.buffers.get(`${s.prefix}.norm.running_var`)!;
        const unbiased = tf.mul(s.variance, s.count / Math.max(s.count - 1, 1));
        return [
          Array.from(tf.add(tf.mul(mean, 1 - TORCH_BN_MOMENTUM), tf.mul(s.mean, TORCH_BN_MOMENTUM)).dataSync()),
          Array.from(tf.add(tf.mul(variance, 1 - TORCH_BN_MOMENTUM), tf.mul(unbiased, TORCH_BN_MOMENTUM)).dataSync()),
        ];
      }),
    );
    const prefixes = stats.map((s) => s.prefix);
    model.updateBatchNormStats(stats);
    prefixes.forEach((p, j) => {
      assert.deepEqual(
        Array.from(model.buffers.get(`${p}.norm.running_mean`)!.dataSync()),
        expected[j][0],
        `${p} running_mean`,
      );
      assert.deepEqual(
        Array.from(model.buffers.get(`${p}.norm.running_var`)!.dataSync()),
        expected[j][1],
        `${p} running_var`,
      );
    });
  }
  x.dispose();
  model.dispose();
});

test('bn_virtual_batch_size: ghost batch norm over groups gives, per group, what that group alone gives, and averages the moments', async () => {
  const model = new HarDNet('HarDNet39ds', 10, 0);
  const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
  const [a, b] = tf.split(x, 2, 0) as tf.Tensor4D[];
  const statsGhost: BatchStats[] = [];
  const ghost = model.forward(x, { training: true, dropout: false, batchStats: statsGhost, bnGroupSize: 2 });
  const statsA: BatchStats[] = [];
  const statsB: BatchStats[] = [];
  const alone = tf.concat(
    [
      model.forward(a, { training: true, dropout: false, batchStats: statsA }),
      model.forward(b, { training: true, dropout: false, batchStats: statsB }),
    ],
    0,
  );
  const diff = tf.max(tf.abs(tf.sub(ghost, alone))).dataSync()[0];
  assert.ok(diff < 1e-4, `ghost BN logits differ from the groups run alone by ${diff}`);
  const whole = model.forward(x, { training: true, dropout: false });
  assert.ok(
    tf.max(tf.abs(tf.sub(ghost, whole))).dataSync()[0] > 1e-3,
    'ghost BN should differ from BN over the whole batch',
  );
  assert.equal(statsGhost.length, 2 * statsA.length, 'one moments entry per group and layer');
  // the running mean moves towards the mean of the two groups' batch means
  const prefix = statsA[0].prefix;
  const expected = Array.from(tf.mul(tf.add(statsA[0].mean, statsB[0].mean), 0.5 * TORCH_BN_MOMENTUM).dataSync());
  model.updateBatchNormStats(statsGhost);
  const got = Array.from(model.buffers.get(`${prefix}.norm.running_mean`)!.dataSync());
  got.forEach((v, i) => {
    assert.ok(Math.abs(v - expected[i]) < 1e-6, `running_mean[${i}] ${v} vs ${expected[i]}`);
  });
  tf.dispose([x, a, b, ghost, alone, whole, ...[...statsA, ...statsB].flatMap((s) => [s.mean, s.variance])]);
  model.dispose();
});

/** A loader batch over `images`: trainStep hands its buffer back once the tensors that wrapped it are gone. */
function batchOf(images: Float32Array, labels: Int32Array, released: { count: number }): Batch {
  return {
    images,
    labels,
    shape: [labels.length, 32, 32, 3],
    readerCost: 0.001,
    indices: [...labels.keys()],
    release: () => {
      released.count++;
    },
  };
}

test('trainStep is the step written out: same loss and weights, no tensor left behind, a stop request comes back', async () => {
  const seed = 7;
  const labels = Int32Array.from([0, 1, 2, 3]);
  const stepped = new HarDNet('HarDNet39ds', 10, 0);
  const steppedParams = new FlatParameters(stepped.weights);
  const steppedOpt = new Momentum(steppedParams, { momentum: 0.9, l2Decay: 1e-4 });
  const parts: StepParts = {
    model: stepped,
    optimizer: steppedOpt,
    parameters: steppedParams,
    group: new SoloGroup(),
    seed,
    labelSmoothing: 0.1,
    temperature: 1,
    bnGroupSize: 0,
    topk: 5,
    manualGc: true,
  };
  const byHand = new HarDNet('HarDNet39ds', 10, 0);
  const byHandParams = new FlatParameters(byHand.weights);
  const byHandOpt = new Momentum(byHandParams, { momentum: 0.9, l2Decay: 1e-4 });
  const released = { count: 0 };
  const counts: number[] = [];
  for (let iteration = 0; iteration < 4; iteration++) {
    const noise = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', iteration);
    const images = noise.dataSync() as Float32Array;
    noise.dispose();
    const result = await trainStep(parts, batchOf(images, labels, released), {
      iteration,
      lr: 0.01,
      stopRequested: iteration === 3,
    });
    if (iteration > 0) counts.push(tf.memory().numTensors); // the first step creates cached constants
    assert.equal(result.n, 4);
    assert.equal(result.stop, iteration === 3, `stop flag after step ${iteration}`);
    assert.ok(result.correct.top1 <= result.correct.topk && result.correct.topk <= 4);
    assert.equal(result.split.data, 0.001);
    for (const s of Object.values(result.split)) assert.ok(s >= 0 && Number.isFinite(s));

    const x = tf.tensor4d(images, [4, 32, 32, 3]);
    const y = tf.tensor1d(labels, 'int32');
    const pass = computeGradients(byHand, x, y, { labelSmoothing: 0.1, seed: mixSeed(seed, iteration) });
    const [loss] = await pass.loss.data();
    byHandParams.packGradients(pass.grads);
    byHand.updateBatchNormStats(pass.batchStats);
    byHandOpt.step(0.01);
    tf.dispose([x, y, pass.loss, pass.logits, ...pass.grads.values()]);
    assert.equal(result.loss, loss, `loss of step ${iteration}`);
  }
  assert.equal(released.count, 4, 'every batch handed back');
  assert.deepEqual(counts, new Array(counts.length).fill(counts[0]), `tensor counts per step: ${counts.join(', ')}`);
  for (const [name, w] of stepped.weights)
    assert.deepEqual(w.dataSync(), byHand.weights.get(name)!.dataSync(), `weight ${name}`);
  stepped.dispose();
  byHand.dispose();
});

/** A group of one whose all-reduce stays in flight for 30 ms, and which records when each one was. */
class SlowSoloGroup extends SoloGroup {
  readonly windows: [number, number][] = [];
  override async allReduce(buf: Float32Array, op: 'sum' | 'mean', control = 0): Promise<number> {
    const start = performance.now();
    const out = await super.allReduce(buf, op, control);
    await new Promise((r) => setTimeout(r, 30));
    this.windows.push([start, performance.now()]);
    return out;
  }
}

test('manual_gc: every step runs a young-generation collection while its all-reduce is in flight, without --expose-gc', async () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'the test process must not have --expose-gc');
  const minor: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MINOR)
        minor.push(e.startTime);
  });
  observer.observe({ entryTypes: ['gc'] });
  const model = new HarDNet('HarDNet39ds', 10, 0);
  const params = new FlatParameters(model.weights);
  const group = new SlowSoloGroup();
  const parts: StepParts = {
    model,
    optimizer: new Momentum(params, { momentum: 0.9, l2Decay: 1e-4 }),
    parameters: params,
    group,
    seed: 1,
    labelSmoothing: 0,
    temperature: 1,
    bnGroupSize: 0,
    topk: 5,
    manualGc: true,
  };
  const labels = Int32Array.from([0, 1]);
  try {
    for (let iteration = 0; iteration < 3; iteration++)
      await trainStep(parts, batchOf(new Float32Array(2 * 32 * 32 * 3).fill(0.5), labels, { count: 0 }), {
        iteration,
        lr: 0.01,
        stopRequested: false,
      });
    await new Promise((r) => setTimeout(r, 50)); // GC entries are delivered asynchronously
  } finally {
    observer.disconnect();
    model.dispose();
  }
  // the collection starts after the all-reduce was started and before it completes, once in every step
  for (const [i, [from, to]] of group.windows.entries())
    assert.ok(
      minor.some((t) => t >= from && t <= to),
      `no young-generation collection during step ${i}'s all-reduce (${from.toFixed(1)}-${to.toFixed(1)} ms; minor GCs at ${minor.map((t) => t.toFixed(1)).join(', ')})`,
    );
  assert.equal(group.windows.length, 3);
  // the flag was only borrowed: code that runs later in a new context does not find gc there
  assert.equal(vm.runInNewContext('typeof gc'), 'undefined');
});
