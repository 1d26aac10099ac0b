import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Mulberry32 } from '../shared/rng.js';
import { cutmix, mixup, sampleBeta, mixOperatorFromConfig } from '../worker/data/mix.js';

const shape: [number, number, number, number] = [4, 6, 8, 3];
const per = 6 * 8 * 3;
/** image i holds the value i + 1 everywhere, so every output pixel says where it came from */
const images = Float32Array.from({ length: 4 * per }, (_, k) => Math.floor(k / per) + 1);
const labels = Int32Array.from([10, 11, 12, 13]);

test('Beta(alpha, alpha) has the right mean and variance', () => {
  const rng = new Mulberry32(7);
  const a = 0.2;
  const xs = Array.from({ length: 20000 }, () => sampleBeta(a, a, rng));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
  assert.ok(xs.every((x) => x >= 0 && x <= 1));
  assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(variance - (a * a) / ((2 * a) ** 2 * (2 * a + 1))) < 0.01, `variance ${variance}`);
});

test('mixup: x = lam x + (1 - lam) x[perm], labelsB = labels[perm], repeatable from the seed', () => {
  const m = mixup(images, labels, shape, 0.2, new Mulberry32(3));
  assert.ok(m.lam > 0 && m.lam < 1);
  for (let i = 0; i < 4; i++) {
    const j = m.labelsB[i] - 10; // the partner image
    const expected = m.lam * (i + 1) + (1 - m.lam) * (j + 1);
    for (let k = 0; k < per; k++) assert.ok(Math.abs(m.images[i * per + k] - expected) < 1e-5);
  }
  assert.deepEqual([...m.labelsB].sort(), [10, 11, 12, 13], 'a permutation');
  assert.deepEqual(mixup(images, labels, shape, 0.2, new Mulberry32(3)), m);
});

test('cutmix: a box of the partner image, lam = 1 - box area / image area', () => {
  for (let seed = 0; seed < 20; seed++) {
    const m = cutmix(images, labels, shape, 1.0, new Mulberry32(seed));
    for (let i = 0; i < 4; i++) {
      const j = m.labelsB[i] - 10;
      let pasted = 0;
      for (let k = 0; k < per; k++) {
        const v = m.images[i * per + k];
        assert.ok(v === i + 1 || v === j + 1);
        if (v !== i + 1 || i === j) pasted++;
      }
      if (i !== j) assert.equal(1 - pasted / per, m.lam, `seed ${seed} image ${i}`);
    }
  }
});

test('TRAIN.mix names the operator; a bad one is a clear error', () => {
  assert.equal(typeof mixOperatorFromConfig([{ CutmixOperator: { alpha: 0.2 } }]), 'function');
  assert.throws(() => mixOperatorFromConfig([{ FooOperator: null }]), /TRAIN\.mix\.0: unknown operator 'FooOperator'/);
  assert.throws(() => mixOperatorFromConfig(undefined), /use_mix is True but TRAIN\.mix lists no operator/);
});
