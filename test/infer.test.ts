import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { REPO_ROOT, fixture } from './helpers/hardnet_fixture.js';
import { useBackend } from './helpers/backend.js';
import { HarDNet } from '../worker/model/hardnet.js';
import { loadTorchWeights } from '../worker/model/weights.js';
import { inferPreprocess } from '../worker/data/transforms.js';

const LAUNCH = path.join(REPO_ROOT, 'dist/launcher/cli.js');
const IMAGES = path.join(REPO_ROOT, 'test/fixtures/images');
const PTH = fixture('HarDNet39ds').pth;

function infer(target: string, extra: string[] = []) {
  return spawnSync(process.execPath, [LAUNCH, 'infer', '-i', target, '--model', 'HarDNet39_ds', '--pretrained_model', PTH, '--backend', 'wasm', ...extra], { encoding: 'utf8', timeout: 120_000 });
}

test('infer prints PaddleClas top-5 lines for an image, with the official .pth, matching the model in-process', async () => {
  const image = path.join(IMAGES, fs.readdirSync(IMAGES).find((f) => /\.jpe?g$/i.test(f) && !/trunc|cmyk/i.test(f))!);
  const r = infer(image);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines[0], `Current image file: ${image}`);
  assert.equal(lines.length, 6);
  const parsed = lines.slice(1).map((l, i) => {
    const m = l.match(new RegExp(`^\\ttop${i + 1}, class id: (\\d+), probability: (0\\.\\d{4})$`));
    assert.ok(m, `line ${JSON.stringify(l)}`);
    return { id: Number(m![1]), p: Number(m![2]) };
  });
  for (let i = 1; i < 5; i++) assert.ok(parsed[i].p <= parsed[i - 1].p, 'sorted by probability');
  // the same figures from the model run here on the same preprocessing
  await useBackend('wasm');
  const model = new HarDNet('HarDNet39ds', 1000);
  await loadTorchWeights(model, PTH);
  const img = await inferPreprocess(image, { resizeShort: 256, crop: 224 });
  assert.deepEqual(img.shape, [224, 224, 3]);
  const probs = tf.tidy(() => tf.softmax(model.forward(tf.tensor4d(img.data, [1, 224, 224, 3]), { training: false })));
  const p = await probs.data();
  const best = p.indexOf(Math.max(...p));
  assert.equal(parsed[0].id, best);
  assert.equal(parsed[0].p.toFixed(4), p[best].toFixed(4));
  probs.dispose();
  model.dispose();
});

test('infer on a folder classifies each image in order; bad input is a clear error', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'infer-'));
  const jpg = fs.readdirSync(IMAGES).filter((f) => /\.(png|jpe?g)$/i.test(f) && !/trunc/i.test(f)).slice(0, 2);
  for (const f of jpg) fs.copyFileSync(path.join(IMAGES, f), path.join(dir, f));
  const r = infer(dir, ['--top_k', '3']);
  assert.equal(r.status, 0, r.stderr);
  const files = r.stdout.split('\n').filter((l) => l.startsWith('Current image file: '));
  assert.deepEqual(files, jpg.sort().map((f) => `Current image file: ${path.join(dir, f)}`));
  assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('\ttop')).length, 3 * jpg.length);

  const missing = infer(path.join(dir, 'nope.jpg'));
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /nope\.jpg' does not exist/);
  const wrongModel = spawnSync(process.execPath, [LAUNCH, 'infer', '-i', dir, '--model', 'HarDNet68', '--pretrained_model', PTH, '--backend', 'wasm'], { encoding: 'utf8' });
  assert.notEqual(wrongModel.status, 0);
  assert.match(wrongModel.stderr, /state_dict\.pth: state_dict does not match the model/);
});
