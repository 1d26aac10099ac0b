import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { HarDNet } from '../worker/model/hardnet.js';
import { VARIANTS, resolveVariant } from '../worker/model/variants.js';
import { buildPlan, countModel } from '../worker/model/plan.js';
import { loadTorchWeights } from '../worker/checkpoint/torch_weights.js';
import { readPth } from '../worker/checkpoint/pth.js';
import { computeGradients } from '../worker/train/step.js';
import { fixture, maxAbsDiff, relL2 } from './helpers/hardnet_fixture.js';
import { useBackend } from './helpers/backend.js';

before(async () => {
  await useBackend('wasm');
});

test('parameter, BN-buffer and MAC counts match the official model exactly', () => {
  const expected: Record<string, [number, number, number]> = {
    HarDNet39ds: [3_488_228, 16_816, 429_471_474],
    HarDNet68: [17_565_348, 12_612, 4_246_114_304],
    HarDNet68ds: [4_180_602, 22_600, 775_281_526],
    HarDNet85: [36_670_212, 20_092, 9_074_081_584],
  };
  for (const [name, [params, bn, macs]] of Object.entries(expected)) {
    assert.deepEqual(countModel(buildPlan(VARIANTS[name], 1000), 224), { params, bnBuffers: bn, macs }, name);
  }
  // other sizes (reference table: 36.0 M / 347.6 M MACs at 64, 9.77 M at 32) and class counts
  assert.equal(Math.round(countModel(buildPlan(VARIANTS.HarDNet39ds, 1000), 64).macs / 1e5) / 10, 36.0);
  assert.equal(Math.round(countModel(buildPlan(VARIANTS.HarDNet68, 1000), 64).macs / 1e5) / 10, 347.6);
  assert.equal(Math.round(countModel(buildPlan(VARIANTS.HarDNet39ds, 1000), 32).macs / 1e4) / 100, 9.77);
  const ten = countModel(buildPlan(VARIANTS.HarDNet39ds, 10), 224);
  assert.equal(ten.params, 3_488_228 - 990 * 1024 - 990);
});

test('PaddleClas spellings resolve; an unknown name lists the closest ones', () => {
  assert.equal(resolveVariant('HarDNet39_ds').name, 'HarDNet39ds');
  assert.equal(resolveVariant('HarDNet68_ds').name, 'HarDNet68ds');
  assert.throws(() => resolveVariant('HardNet86'), /unknown architecture 'HardNet86'; closest valid names: HarDNet85/);
});

/** our gradient (tf layout) -> PyTorch layout, for comparison with the fixture */
function toTorchLayout(kind: string, g: tf.Tensor): tf.Tensor {
  if (kind === 'conv') return tf.transpose(g, [3, 2, 0, 1]);
  if (kind === 'depthwise') return tf.transpose(g, [2, 3, 0, 1]);
  if (kind === 'fc_weight') return tf.transpose(g, [1, 0]);
  return g;
}

// wasm: the backend that trains here; cpu: tfjs-core's generic gradients and this project's non-wasm branches
// (BN statistics, gradient reads, the optimizer's weights), the path the native 'tensorflow' backend takes
for (const [name, backend] of [
  ['HarDNet39ds', 'wasm'],
  ['HarDNet68ds', 'wasm'],
  ['HarDNet68', 'wasm'],
  ['HarDNet39ds', 'cpu'],
] as const) {
  test(`${name}: official weights give the fixture's eval logits, loss, gradients and BN statistics (${backend})`, async () => {
    await useBackend(backend);
    const fx = fixture(name);
    const model = new HarDNet(name, 1000);
    await loadTorchWeights(model, fx.pth);
    const input = fx.io.get('input_nhwc');
    const x = tf.tensor4d(input.data, input.shape as [number, number, number, number]);

    const logits = model.forward(x, { training: false });
    const evalDiff = maxAbsDiff(await logits.data(), fx.io.get('logits').data);
    assert.ok(evalDiff < 5e-4, `eval logits differ by ${evalDiff}`);
    logits.dispose();

    const labels = tf.tensor1d(fx.meta.train.labels, 'int32');
    const r = computeGradients(model, x, labels, { dropout: false });
    const loss = (await r.loss.data())[0];
    assert.ok(Math.abs(loss - fx.grad.get('loss').data[0]) < 1e-4, `loss ${loss} vs ${fx.grad.get('loss').data[0]}`);
    for (const gname of fx.grad.names().filter((n) => n.startsWith('grad.'))) {
      const pname = gname.slice('grad.'.length);
      const spec = model.specs.find((s) => s.name === pname)!;
      const ours = tf.tidy(() => toTorchLayout(spec.kind, r.grads.get(pname)!));
      const err = relL2(await ours.data(), fx.grad.get(gname).data);
      ours.dispose();
      assert.ok(err < 1e-3, `${pname}: gradient relative L2 error ${err}`);
    }
    // BN running statistics after the step, PyTorch's rule: momentum 0.1 (nn.BatchNorm2d's default, which the
    // official model keeps), the batch mean, the UNBIASED batch variance (n / (n - 1) times the one it normalises with)
    const before = new Map(
      r.batchStats.map((st) => [
        st.prefix,
        ['running_mean', 'running_var'].map((k) =>
          Float64Array.from(model.buffers.get(`${st.prefix}.norm.${k}`)!.dataSync()),
        ),
      ]),
    );
    const moments = r.batchStats.map((st) => ({
      prefix: st.prefix,
      count: st.count,
      mean: Float64Array.from(st.mean.dataSync()),
      biased: Float64Array.from(st.variance.dataSync()),
    }));
    model.updateBatchNormStats(r.batchStats);
    // base.0 against the fixture (float64 PyTorch): the error of a right update is ~1e-7; forgetting n / (n - 1)
    // (n = 2 images x 32 x 32 here) would move running_var by 0.1 * var / 2047 (2e-5 here), 10 times the tolerance
    const first = moments[0];
    assert.equal(first.prefix, 'base.0');
    assert.equal(first.count, 2 * 32 * 32, 'base.0 normalises over 2 images of 32x32');
    const biasedBug = Math.max(...first.biased.map((v) => (0.1 * v) / (first.count - 1)));
    for (const stat of ['running_mean', 'running_var']) {
      const ours = await model.buffers.get(`base.0.norm.${stat}`)!.data();
      const d = maxAbsDiff(ours, fx.grad.get(`bn_after.base.0.norm.${stat}`).data);
      assert.ok(
        d < biasedBug / 10,
        `${stat} after the step differs from PyTorch's by ${d} (a biased-variance update would by ${biasedBug})`,
      );
    }
    // every layer: the update from the step's own batch moments; deep layers normalise over few values (2 images of
    // 2x2 at the last stage: n / (n - 1) = 8/7), so there a biased variance or another momentum is far off
    const strides = new Set([2, 4, 8, 16, 32].map((s) => 2 * (64 / s) ** 2));
    let previous = Infinity;
    for (const m of moments) {
      assert.ok(strides.has(m.count) && m.count <= previous, `${m.prefix}: normalised over ${m.count} values`);
      previous = m.count;
      const [mean0, var0] = before.get(m.prefix)!;
      const mean = model.buffers.get(`${m.prefix}.norm.running_mean`)!.dataSync();
      const variance = model.buffers.get(`${m.prefix}.norm.running_var`)!.dataSync();
      for (let c = 0; c < mean.length; c++) {
        const em = 0.9 * mean0[c] + 0.1 * m.mean[c];
        const ev = 0.9 * var0[c] + 0.1 * m.biased[c] * (m.count / (m.count - 1));
        assert.ok(
          Math.abs(mean[c] - em) <= 1e-6 * (1 + Math.abs(em)),
          `${m.prefix}.norm.running_mean[${c}] ${mean[c]} vs ${em}`,
        );
        assert.ok(
          Math.abs(variance[c] - ev) <= 1e-6 * ev,
          `${m.prefix}.norm.running_var[${c}] ${variance[c]} vs ${ev}`,
        );
      }
    }
    assert.equal(previous, 8, 'the last stage normalises over 2 images of 2x2');
    tf.dispose([x, labels, r.loss, r.logits, ...r.grads.values()]);
    model.dispose();
    await useBackend('wasm');
  });
}

test('weights of another variant are refused with the mismatches listed, and the model is left unchanged', async () => {
  const model = new HarDNet('HarDNet68ds', 1000);
  const before = await model.weights.get('base.0.conv.weight')!.data();
  const file = fixture('HarDNet39ds').pth;
  await assert.rejects(loadTorchWeights(model, file), (e: Error) => {
    assert.match(e.message, /HarDNet39ds\/state_dict\.pth/);
    assert.match(e.message, /missing from the file \(\d+\):\n {2}base\.3\.layers\.4\.layer1\.conv\.weight\n/);
    assert.match(e.message, /\n {2}base\.15\.conv\.weight\n/);
    assert.match(e.message, /mis-shaped \(\d+\):\n {2}base\.0\.conv\.weight: file \[24,3,3,3\], model \[32,3,3,3\]/);
    return true;
  });
  assert.deepEqual(await model.weights.get('base.0.conv.weight')!.data(), before);
  // a state_dict missing one entry names it
  const sd = await readPth(fixture('HarDNet39ds').pth);
  sd.delete('base.3.layers.2.layer2.norm.running_var');
  const m39 = new HarDNet('HarDNet39ds', 1000);
  const { assignTorchStateDict } = await import('../worker/checkpoint/torch_weights.js');
  assert.throws(
    () => assignTorchStateDict(m39, sd, 'x.pth'),
    /1 missing, 0 unexpected, 0 mis-shaped\nmissing from the file \(1\):\n {2}base\.3\.layers\.2\.layer2\.norm\.running_var/,
  );
  model.dispose();
  m39.dispose();
});

test('the default seed 0 is a seed: two fresh models are identical, and so are two dropout masks drawn with it', async () => {
  // tfjs takes a seed of 0 as none (Math.random): without shared/rng.ts's tfSeed the first convolution of a run
  // with seed 0 was initialised differently every time
  const a = new HarDNet('HarDNet39ds', 10, 0);
  const b = new HarDNet('HarDNet39ds', 10, 0);
  for (const [name, w] of a.weights) {
    assert.deepEqual(w.dataSync(), b.weights.get(name)!.dataSync(), name);
  }
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const [ya, yb] = [a, a].map((m) => m.forward(x, { training: false, dropout: true, seed: 0 }));
  assert.deepEqual(ya.dataSync(), yb.dataSync());
  tf.dispose([x, ya, yb]);
  a.dispose();
  b.dispose();
});
