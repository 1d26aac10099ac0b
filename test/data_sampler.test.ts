import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NumpyRandomState, Mulberry32 } from '../shared/rng.js';
import { DistributedBatchSampler } from '../worker/data/sampler.js';

// ground truth printed by numpy 2.4: list(range(n)); np.random.RandomState(seed).shuffle(l)
const NUMPY_SHUFFLES: Record<string, number[]> = {
  '0:2': [1, 0],
  '0:10': [2, 8, 4, 9, 1, 6, 7, 3, 0, 5],
  '0:37': [
    22, 20, 16, 10, 31, 28, 15, 11, 2, 25, 30, 32, 36, 34, 29, 33, 8, 13, 5, 17, 14, 7, 27, 1, 12, 26, 24, 6, 23, 4, 18,
    21, 19, 9, 35, 3, 0,
  ],
  '1:10': [2, 9, 6, 4, 0, 3, 1, 7, 8, 5],
  '1:37': [
    2, 29, 3, 22, 25, 27, 21, 35, 19, 24, 30, 17, 28, 34, 31, 26, 4, 14, 10, 33, 23, 32, 20, 18, 6, 13, 7, 36, 1, 16, 0,
    15, 5, 11, 9, 8, 12,
  ],
  '12345:10': [0, 7, 3, 9, 6, 4, 1, 8, 5, 2],
  '4294967295:37': [
    15, 2, 23, 20, 17, 31, 21, 24, 3, 30, 16, 1, 6, 8, 33, 28, 4, 36, 19, 9, 5, 14, 13, 10, 29, 11, 18, 27, 32, 25, 26,
    22, 0, 7, 12, 34, 35,
  ],
};

test('NumpyRandomState.shuffle reproduces numpy RandomState(seed).shuffle', () => {
  for (const [key, expected] of Object.entries(NUMPY_SHUFFLES)) {
    const [seed, n] = key.split(':').map(Number);
    const l = Array.from({ length: n }, (_, i) => i);
    new NumpyRandomState(seed).shuffle(l);
    assert.deepEqual(l, expected, key);
  }
  // a long list crosses many MT19937 state regenerations: sum(i * l[i]) and the head, from numpy
  const l = Array.from({ length: 100000 }, (_, i) => i);
  new NumpyRandomState(0).shuffle(l);
  assert.deepEqual(l.slice(0, 5), [3582, 60498, 53227, 21333, 3885]);
  assert.equal(
    l.reduce((s, v, i) => s + i * v, 0),
    249937372929313,
  );
  const r = new NumpyRandomState(5);
  assert.deepEqual(
    [r.random(), r.random(), r.random()],
    [0.22199317108973948, 0.8707323061773764, 0.20671915533942642],
  );
});

test('NumpyRandomState rejects seeds numpy rejects', () => {
  assert.throws(() => new NumpyRandomState(-1), /seed must be/);
  assert.throws(() => new NumpyRandomState(2 ** 32), /seed must be/);
});

test('Mulberry32 is deterministic and roughly uniform', () => {
  const a = new Mulberry32(42);
  const b = new Mulberry32(42);
  const xs = Array.from({ length: 10000 }, () => a.random());
  assert.deepEqual(
    xs.slice(0, 10),
    Array.from({ length: 10 }, () => b.random()),
  );
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const r = new Mulberry32(1);
  const counts = [0, 0, 0];
  for (let i = 0; i < 3000; i++) counts[r.randint(0, 2)]++;
  assert.ok(
    counts.every((c) => c > 900),
    counts.join(','),
  );
});

/** paddle.io.DistributedBatchSampler written out plainly from the reference text, as an independent oracle. */
function paddleFormula(
  N: number,
  W: number,
  B: number,
  r: number,
  epoch: number,
  shuffle: boolean,
  dropLast: boolean,
): number[][] {
  const numSamples = Math.ceil(N / W);
  const total = numSamples * W;
  let indices = Array.from({ length: N }, (_, i) => i);
  while (indices.length < total) indices = indices.concat(indices.slice(0, total - indices.length));
  if (shuffle) new NumpyRandomState(epoch).shuffle(indices);
  let mine = indices;
  if (W > 1) {
    mine = [];
    const last = total % (B * W);
    for (let i = r * B; i < total - last; i += B * W) mine.push(...indices.slice(i, i + B));
    const tail = indices.slice(total - last);
    const lastLocal = last / W;
    mine.push(...tail.slice(r * lastLocal, (r + 1) * lastLocal));
  }
  const out: number[][] = [];
  for (let i = 0; i < mine.length; i += B) {
    const b = mine.slice(i, i + B);
    if (b.length === B || !dropLast) out.push(b);
  }
  return out;
}

test('DistributedBatchSampler matches the paddle formula for many N, W, B', () => {
  for (const N of [1, 7, 50, 101, 1000]) {
    for (const W of [1, 2, 3, 4, 8]) {
      for (const globalB of [8, 16, 64]) {
        const B = Math.floor(globalB / W);
        for (const [shuffle, dropLast] of [
          [true, true],
          [false, false],
        ] as const) {
          const lengths = new Set<number>();
          const seen = new Set<number>();
          for (let r = 0; r < W; r++) {
            const s = new DistributedBatchSampler({
              datasetSize: N,
              batchSize: B,
              worldSize: W,
              rank: r,
              shuffle,
              dropLast,
            });
            s.setEpoch(3);
            const got = [...s];
            const want = paddleFormula(N, W, B, r, 3, shuffle, dropLast);
            assert.deepEqual(got, want, `N=${N} W=${W} B=${B} r=${r} shuffle=${shuffle}`);
            assert.equal(got.length, s.length, `length N=${N} W=${W} B=${B}`);
            lengths.add(got.length);
            for (const b of got) for (const i of b) seen.add(i);
          }
          assert.equal(lengths.size, 1, `every worker gets the same number of batches (N=${N} W=${W} B=${B})`);
          // without drop_last every sample appears somewhere
          if (!dropLast) assert.equal(seen.size, N);
        }
      }
    }
  }
});

test('DistributedBatchSampler: epochs differ, the same epoch repeats, iteration advances the epoch like paddle', () => {
  const s = new DistributedBatchSampler({
    datasetSize: 100,
    batchSize: 10,
    worldSize: 2,
    rank: 1,
    shuffle: true,
    dropLast: true,
  });
  const e0 = [...s];
  assert.equal(s.epoch, 1);
  const e1 = [...s];
  assert.notDeepEqual(e0, e1);
  s.setEpoch(0);
  assert.deepEqual([...s], e0);
  // worked example: N=10, W=2, B=2, no shuffle -> total 10, last = 10 % 4 = 2, rank 1 gets [2,3],[6,7],[9]
  const v = new DistributedBatchSampler({ datasetSize: 10, batchSize: 2, worldSize: 2, rank: 1 });
  assert.deepEqual([...v], [[2, 3], [6, 7], [9]]);
  // N=5, W=2: padded with index 0
  const p = new DistributedBatchSampler({ datasetSize: 5, batchSize: 4, worldSize: 2, rank: 1 });
  // total 6 = [0,1,2,3,4,0]; last = 6 % 8 = 6, split 3 each: rank 1 takes positions 3..5
  assert.deepEqual(p.workerIndices(), [3, 4, 0]);
});

test('DistributedBatchSampler rejects bad arguments by name', () => {
  assert.throws(() => new DistributedBatchSampler({ datasetSize: 10, batchSize: 0 }), /batch size/);
  assert.throws(() => new DistributedBatchSampler({ datasetSize: 10, batchSize: 2, worldSize: 2, rank: 2 }), /rank 2/);
  assert.throws(() => new DistributedBatchSampler({ datasetSize: 0, batchSize: 2 }), /dataset size/);
});
