import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, ConfigError } from '../shared/config.js';
import { makeSchedule, stepsPerEpochOf } from '../worker/optim/lr.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HARDNET = path.resolve(REPO_ROOT, 'configs/HarDNet68_best_v2.yaml');
const DATA = ['TRAIN.file_list=t.txt', 'VALID.file_list=v.txt'];
const close = (a: number, b: number, msg?: string): void =>
  assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), msg ?? `${a} != ${b}`);

test('HarDNet config: Cosine over S = 1281167 // 256 = 5004 steps x 150 epochs, T = 750600', () => {
  const cfg = loadConfig(HARDNET, DATA, { warn: () => {} });
  const S = stepsPerEpochOf(cfg);
  assert.equal(S, 5004);
  const lr = makeSchedule(cfg.LEARNING_RATE!, { stepsPerEpoch: S, epochs: cfg.epochs });
  const T = 750600;
  assert.equal(lr(0), 0.05);
  close(lr(T / 2), 0.025);
  close(lr(T / 4), 0.05 * 0.5 * (1 + Math.cos(Math.PI / 4)));
  close(lr(T), 0);
  // stepped per iteration, not per epoch: consecutive iterations differ
  assert.ok(lr(1) < lr(0) && lr(5005) < lr(5004));
  close(lr(5004), 0.05 * 0.5 * (1 + Math.cos(Math.PI / 150)));
});

test('CosineWarmup: linear from 0 over warmup_epoch*S iterations, then a cosine over the remaining epochs', () => {
  const lr = makeSchedule(
    { function: 'CosineWarmup', params: { lr: 0.4, warmup_epoch: 2 } },
    { stepsPerEpoch: 100, epochs: 10 },
  );
  assert.equal(lr(0), 0);
  close(lr(100), 0.2);
  close(lr(199), (0.4 * 199) / 200);
  assert.equal(lr(200), 0.4);
  close(lr(200 + 400), 0.2); // half of the 8 remaining epochs
  close(lr(1000), 0);
});

test('Piecewise: lr * gamma^i, i = boundaries S*decay_epochs reached', () => {
  const lr = makeSchedule(
    { function: 'Piecewise', params: { lr: 0.1, decay_epochs: [3, 6], gamma: 0.1 } },
    { stepsPerEpoch: 100, epochs: 9 },
  );
  assert.equal(lr(0), 0.1);
  assert.equal(lr(299), 0.1);
  close(lr(300), 0.01);
  close(lr(599), 0.01);
  close(lr(600), 0.001);
  close(lr(899), 0.001);
});

test('ExponentialWarmup: linear warmup, then rate^k with k raised every int(decay_epochs*S) iterations', () => {
  const lr = makeSchedule(
    { function: 'ExponentialWarmup', params: { lr: 0.1, warmup_epoch: 5, decay_epochs: 2.4, decay_rate: 0.97 } },
    { stepsPerEpoch: 100, epochs: 20 },
  );
  close(lr(250), 0.05);
  close(lr(499), (0.1 * 499) / 500);
  assert.equal(lr(500), 0.1);
  assert.equal(lr(739), 0.1);
  close(lr(740), 0.1 * 0.97);
  close(lr(979), 0.1 * 0.97);
  close(lr(980), 0.1 * 0.97 ** 2);
  // the interval truncates: decay_epochs 2.45 * 10 steps = int(24.5) = 24
  const lr2 = makeSchedule(
    { function: 'ExponentialWarmup', params: { lr: 1, warmup_epoch: 0, decay_epochs: 2.45, decay_rate: 0.5 } },
    { stepsPerEpoch: 10, epochs: 5 },
  );
  assert.equal(lr2(23), 1);
  assert.equal(lr2(24), 0.5);
});

test('schedule parameters come from the config with PaddleClas defaults; bad shapes and iterations throw', () => {
  const cfg = loadConfig(HARDNET, [...DATA, 'LEARNING_RATE.function=ExponentialWarmup'], { warn: () => {} });
  assert.deepEqual(cfg.LEARNING_RATE, {
    function: 'ExponentialWarmup',
    params: { lr: 0.05, warmup_epoch: 5, decay_epochs: 2.4, decay_rate: 0.97 },
  });
  const cw = loadConfig(HARDNET, [...DATA, 'LEARNING_RATE.function=CosineWarmup'], { warn: () => {} });
  assert.deepEqual(cw.LEARNING_RATE, { function: 'CosineWarmup', params: { lr: 0.05, warmup_epoch: 5 } });
  assert.throws(
    () => loadConfig(HARDNET, [...DATA, 'total_images=100'], { warn: () => {} }),
    (e: Error) =>
      e instanceof ConfigError && /config key total_images: 100 is less than TRAIN\.batch_size \(256\)/.test(e.message),
  );
  const lr = makeSchedule(cfg.LEARNING_RATE!, { stepsPerEpoch: 10, epochs: 10 });
  assert.throws(() => lr(-1), /iteration must be an integer >= 0, got -1/);
  assert.throws(() => lr(1.5), /iteration must be an integer >= 0/);
  assert.throws(
    () => makeSchedule(cfg.LEARNING_RATE!, { stepsPerEpoch: 0, epochs: 10 }),
    /steps per epoch must be a positive integer/,
  );
  const tiny = {
    function: 'ExponentialWarmup' as const,
    params: { lr: 0.1, warmup_epoch: 1, decay_epochs: 0.5, decay_rate: 0.9 },
  };
  assert.throws(
    () => makeSchedule(tiny, { stepsPerEpoch: 1, epochs: 10 }),
    /decay_epochs \(0\.5\) \* 1 steps per epoch is less than one iteration/,
  );
});
