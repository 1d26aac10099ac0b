/**
 * The generic path end to end: a 2-worker `launch train -o backend=cpu` (tfjs-core's generic gradients, BN
 * statistics and the Momentum update as device ops, gradients read as one fused buffer: what the native
 * 'tensorflow' backend runs) ends with the same losses and weights as the same run on wasm, within float32
 * tolerance. Tiny on purpose: the cpu backend's JavaScript convolution gradients are slow.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { ensureBuiltinFashionMnist } from '../worker/data/builtin.js';
import { REPO_ROOT, maxAbsDiff } from './helpers/hardnet_fixture.js';

const LAUNCH = path.join(REPO_ROOT, 'dist/launcher/cli.js');
let tmp = '';
let data: { train: string; dir: string };

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hardnet-train-cpu-'));
  const b = await ensureBuiltinFashionMnist(path.join(tmp, 'fm'));
  const train = path.join(tmp, 'train8.txt');
  fs.writeFileSync(train, fs.readFileSync(b.trainList, 'utf8').split('\n').slice(0, 8).join('\n') + '\n');
  data = { train, dir: b.dataDir };
});

/** 8 images, global batch 4 (2 per worker): two steps, then the checkpoint. */
function run(backend: 'cpu' | 'wasm'): { losses: number[]; weights: Float32Array } {
  const out = path.join(tmp, backend);
  const args = [
    `TRAIN.file_list=${data.train}`, `TRAIN.data_dir=${data.dir}`, 'total_images=8', 'TRAIN.batch_size=4', 'epochs=1',
    'validate=False', `model_save_dir=${out}`, `metrics_file=${path.join(out, 'metrics.jsonl')}`, 'print_interval=1', `backend=${backend}`,
  ].flatMap((o) => ['-o', o]);
  const r = spawnSync(process.execPath, [LAUNCH, '--nproc_per_node', '2', '--log_dir', path.join(out, 'log'), 'train', ...args],
    { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${backend}: launcher failed:\n${r.stdout}\n${r.stderr}`);
  const log = fs.readFileSync(path.join(out, 'log', 'workerlog.0'), 'utf8');
  assert.match(log, new RegExp(`backend: ${backend} on CPU`));
  const losses = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { mode: string; end?: boolean; loss: number })
    .filter((m) => m.mode === 'train' && !m.end).map((m) => m.loss);
  const bin = fs.readFileSync(path.join(out, 'HarDNet39ds', '0', 'weights.bin'));
  return { losses, weights: new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength)) };
}

test('2 workers on the cpu backend train to the same losses and weights as on wasm', () => {
  const cpu = run('cpu');
  const wasm = run('wasm');
  assert.equal(cpu.losses.length, 2);
  assert.equal(wasm.losses.length, 2);
  for (let i = 0; i < 2; i++) {
    assert.ok(Math.abs(cpu.losses[i]! - wasm.losses[i]!) < 1e-4 * Math.max(1, Math.abs(wasm.losses[i]!)), `step ${i}: loss ${cpu.losses[i]} (cpu) vs ${wasm.losses[i]} (wasm)`);
  }
  const d = maxAbsDiff(cpu.weights, wasm.weights);
  assert.ok(d < 1e-4, `weights after two steps differ by up to ${d}`);
});
