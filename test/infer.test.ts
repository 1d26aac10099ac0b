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
import { loadTorchWeights } from '../worker/checkpoint/torch_weights.js';
import { inferPreprocess } from '../worker/data/transforms.js';

const LAUNCH = path.join(REPO_ROOT, 'dist/launcher/cli.js');
const IMAGES = path.join(REPO_ROOT, 'test/fixtures/images');
const PTH = fixture('HarDNet39ds').pth;

function infer(target: string, extra: string[] = []) {
  return spawnSync(
    process.execPath,
    [
      LAUNCH,
      'infer',
      '-i',
      target,
      '--model',
      'HarDNet39_ds',
      '--pretrained_model',
      PTH,
      '--backend',
      'wasm',
      ...extra,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
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
  const jpg = fs
    .readdirSync(IMAGES)
    .filter((f) => /\.(png|jpe?g)$/i.test(f) && !/trunc/i.test(f))
    .slice(0, 2);
  for (const f of jpg) fs.copyFileSync(path.join(IMAGES, f), path.join(dir, f));
  const r = infer(dir, ['--top_k', '3']);
  assert.equal(r.status, 0, r.stderr);
  const files = r.stdout.split('\n').filter((l) => l.startsWith('Current image file: '));
  assert.deepEqual(
    files,
    jpg.sort().map((f) => `Current image file: ${path.join(dir, f)}`),
  );
  assert.equal(r.stdout.split('\n').filter((l) => l.startsWith('\ttop')).length, 3 * jpg.length);

  const missing = infer(path.join(dir, 'nope.jpg'));
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /nope\.jpg' does not exist/);
  const wrongModel = spawnSync(
    process.execPath,
    [LAUNCH, 'infer', '-i', dir, '--model', 'HarDNet68', '--pretrained_model', PTH, '--backend', 'wasm'],
    { encoding: 'utf8' },
  );
  assert.notEqual(wrongModel.status, 0);
  assert.match(wrongModel.stderr, /state_dict\.pth: state_dict does not match the model/);
});

test('infer on a checkpoint of this tool takes the architecture, class count and VALID preprocessing of its run', async () => {
  const { saveCheckpoint } = await import('../worker/checkpoint/checkpoint.js');
  const { loadConfig, saveConfig } = await import('../shared/config.js');
  const { buildTransforms } = await import('../worker/data/transforms.js');
  await useBackend('wasm');
  const runDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'infer-ckpt-')), 'HarDNet39ds');
  const cfg = loadConfig(undefined, [], { warn: () => {} }); // the quickstart: 10 classes, 32x32, Fashion-MNIST mean/std
  const model = new HarDNet('HarDNet39ds', 10, 3);
  await saveCheckpoint(path.join(runDir, '0'), model, undefined, {
    epoch: 0,
    iteration: 1,
    bestTop1: 0,
    bestEpoch: 0,
    model: 'HarDNet39ds',
    classesNum: 10,
  });
  saveConfig(cfg, runDir);
  const image = path.join(IMAGES, fs.readdirSync(IMAGES).find((f) => /\.jpe?g$/i.test(f) && !/trunc|cmyk/i.test(f))!);
  const r = spawnSync(
    process.execPath,
    [LAUNCH, 'infer', '-i', image, '--pretrained_model', path.join(runDir, '0'), '--backend', 'wasm'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /preprocessing as VALID\.transforms of .*HarDNet39ds\/config\.yaml/);
  const top1 = r.stdout.match(/\ttop1, class id: (\d+), probability: (0\.\d{4})/);
  assert.ok(top1, r.stdout);
  assert.ok(Number(top1![1]) < 10, 'a class of the 10-class model');
  // the same figure from the model on the config's VALID transforms (32x32, its mean/std)
  const img = await buildTransforms(cfg.VALID!.transforms, { channelsLast: true })({ path: image });
  assert.deepEqual(img.shape, [32, 32, 3]);
  const probs = tf.tidy(() => tf.softmax(model.forward(tf.tensor4d(img.data, [1, 32, 32, 3]), { training: false })));
  const p = await probs.data();
  assert.equal(Number(top1![1]), p.indexOf(Math.max(...p)));
  assert.equal(top1![2], Math.max(...p).toFixed(4));
  // sizes given on the command line win: PaddleClas's 256/224 preprocessing then
  const sized = spawnSync(
    process.execPath,
    [
      LAUNCH,
      'infer',
      '-i',
      image,
      '--pretrained_model',
      path.join(runDir, '0'),
      '--backend',
      'wasm',
      '--resize_short',
      '40',
      '--crop_size',
      '32',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(sized.status, 0, sized.stderr);
  assert.doesNotMatch(sized.stderr, /VALID\.transforms/);
  probs.dispose();
  model.dispose();
  fs.rmSync(path.dirname(runDir), { recursive: true, force: true });
});
