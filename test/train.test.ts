/**
 * The training job end to end with real processes: the shortened quickstart under the launcher (2 CPU workers),
 * resume from a checkpoint ending bit for bit where an uninterrupted run ends, eval on a checkpoint, and
 * checkpoints that survive a SIGKILL mid-save.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { ensureBuiltinFashionMnist } from '../worker/data/builtin.js';
import { REPO_ROOT } from './helpers/hardnet_fixture.js';

const WORKER = path.join(REPO_ROOT, 'dist/worker/main.js');
const LAUNCH = path.join(REPO_ROOT, 'dist/launcher/cli.js');
let tmp = '';
let data: { train: string; val: string; dir: string };

/** The first `n` lines of a file list, as a new list. */
function head(list: string, n: number, out: string): string {
  fs.writeFileSync(out, fs.readFileSync(list, 'utf8').split('\n').slice(0, n).join('\n') + '\n');
  return out;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hardnet-train-'));
  const b = await ensureBuiltinFashionMnist(path.join(tmp, 'fm'));
  data = {
    train: head(b.trainList, 96, path.join(tmp, 'train96.txt')),
    val: head(b.valList, 64, path.join(tmp, 'val64.txt')),
    dir: b.dataDir,
  };
});

/** -o overrides for a small run on the quickstart config */
function small(outDir: string, extra: string[] = []): string[] {
  return [
    `TRAIN.file_list=${data.train}`,
    `TRAIN.data_dir=${data.dir}`,
    `VALID.file_list=${data.val}`,
    `VALID.data_dir=${data.dir}`,
    'total_images=96',
    'TRAIN.batch_size=32',
    'VALID.batch_size=32',
    'epochs=2',
    `model_save_dir=${outDir}`,
    'print_interval=1',
    'backend=wasm',
    ...extra,
  ].flatMap((o) => ['-o', o]);
}

function runWorker(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [WORKER, ...args], { encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The launcher with `n` CPU workers, as a user starts it. */
function runLaunch(n: number, logDir: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [LAUNCH, '--nproc_per_node', String(n), '--log_dir', logDir, ...args], {
    encoding: 'utf8',
    timeout: 240_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function weightsBin(runDir: string, epoch: string): Buffer {
  return fs.readFileSync(path.join(runDir, 'HarDNet39ds', epoch, 'weights.bin'));
}

test('the quickstart under the launcher, shortened: 2 workers train, validate, checkpoint and log', () => {
  const logDir = path.join(tmp, 'log');
  const out = path.join(tmp, 'quick');
  const r = spawnSync(
    process.execPath,
    [LAUNCH, '--nproc_per_node', '2', '--log_dir', logDir, 'train', ...small(out, ['epochs=1'])],
    { encoding: 'utf8', timeout: 240_000 },
  );
  assert.equal(r.status, 0, `launcher failed:\n${r.stdout}\n${r.stderr}`);
  const log0 = fs.readFileSync(path.join(logDir, 'workerlog.0'), 'utf8');
  const log1 = fs.readFileSync(path.join(logDir, 'workerlog.1'), 'utf8');
  // 96 images, global batch 32: 3 steps of 16 images on each worker
  assert.match(
    log0,
    /epoch:0 {2}, train step:2 {3}, top1: \d\.\d{5}, top5: \d\.\d{5}, loss: +\d\.\d{5}, lr: 0\.\d{6}, batch_cost: \d+\.\d{5} s, reader_cost: \d+\.\d{5} s, ips: \d+\.\d{5} images\/sec\./,
  );
  assert.match(log1, /epoch:0 {2}, train step:2 {3},/);
  assert.match(log0, /END epoch:0 {3}valid top1: \d\.\d{5}, top5: \d\.\d{5}, loss: +\d\.\d{5}, {2}batch_cost:/);
  assert.match(log0, /The best top1 acc \d\.\d{5}, in epoch: 0/);
  assert.match(
    log0,
    /time split per step: data wait [\d.]+ s, forward\+backward [\d.]+ s, all-reduce [\d.]+ s, optimizer [\d.]+ s/,
  );
  assert.match(r.stdout, /END epoch:0 {3}valid top1:/, 'rank 0 streams to the terminal');
  for (const d of ['0', 'best_model'])
    assert.ok(fs.existsSync(path.join(out, 'HarDNet39ds', d, 'state.json')), `checkpoint ${d}`);
  const metrics = fs
    .readFileSync(path.join(out, 'HarDNet39ds', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.ok(metrics.some((m) => m.mode === 'train' && m.step === 2 && typeof m.allreduce_s === 'number'));
  assert.ok(metrics.some((m) => m.mode === 'valid' && m.end === true && m.top1 >= 0));
});

test('a run resumed after epoch 0 ends with the same weights as an uninterrupted run, bit for bit', () => {
  const full = path.join(tmp, 'full');
  const a = runWorker(['train', ...small(full)]);
  assert.equal(a.code, 0, a.out);
  const resumed = path.join(tmp, 'resumed');
  const b = runWorker([
    'train',
    ...small(resumed, [`checkpoints=${path.join(full, 'HarDNet39ds', '0')}`, 'last_epoch=0']),
  ]);
  assert.equal(b.code, 0, b.out);
  assert.match(b.out, /resumed from .*HarDNet39ds\/0: epoch 0 done, iteration 3/);
  assert.doesNotMatch(b.out, /epoch:0 {2}, train step/, 'the resumed run starts at epoch 1');
  assert.ok(weightsBin(full, '1').equals(weightsBin(resumed, '1')), 'final weights differ');
  assert.ok(!weightsBin(full, '0').equals(weightsBin(full, '1')), 'the second epoch changed nothing');
  // --resume auto picks the latest complete checkpoint (epoch 1 of 2: nothing left to train)
  const c = runWorker(['train', '--resume', 'auto', ...small(full)]);
  assert.equal(c.code, 0, c.out);
  assert.match(c.out, /resumed from .*HarDNet39ds\/1: epoch 1 done/);
});

test('2 workers under the launcher: a run resumed after epoch 0 ends with the same weights as an uninterrupted run, bit for bit', () => {
  const full = path.join(tmp, 'full2');
  const a = runLaunch(2, path.join(tmp, 'log-full2'), ['train', ...small(full, ['validate=False'])]);
  assert.equal(a.code, 0, a.out);
  const resumed = path.join(tmp, 'resumed2');
  const b = runLaunch(2, path.join(tmp, 'log-resumed2'), [
    'train',
    ...small(resumed, ['validate=False', `checkpoints=${path.join(full, 'HarDNet39ds', '0')}`, 'last_epoch=0']),
  ]);
  assert.equal(b.code, 0, b.out);
  for (const r of [0, 1]) {
    const log = fs.readFileSync(path.join(tmp, 'log-resumed2', `workerlog.${r}`), 'utf8');
    assert.match(log, /resumed from .*HarDNet39ds\/0: epoch 0 done, iteration 3/, `rank ${r}`);
    assert.doesNotMatch(log, /epoch:0 {2}, train step/, `rank ${r} starts at epoch 1`);
  }
  assert.ok(weightsBin(full, '1').equals(weightsBin(resumed, '1')), 'final weights differ');
  assert.ok(!weightsBin(full, '0').equals(weightsBin(full, '1')), 'the second epoch changed nothing');
});

test('2 workers with sharded_optimizer=True: the weights and velocities of the plain run, bit for bit, also resumed', () => {
  const runs = { plain: 'plain-s', sharded: 'sharded', resumed: 'sharded-resumed' };
  const dir = (k: keyof typeof runs) => path.join(tmp, runs[k]);
  const a = runLaunch(2, path.join(tmp, 'log-plain-s'), ['train', ...small(dir('plain'), ['validate=False'])]);
  assert.equal(a.code, 0, a.out);
  const b = runLaunch(2, path.join(tmp, 'log-sharded'), [
    'train',
    ...small(dir('sharded'), ['validate=False', 'sharded_optimizer=True']),
  ]);
  assert.equal(b.code, 0, b.out);
  const c = runLaunch(2, path.join(tmp, 'log-sharded-resumed'), [
    'train',
    ...small(dir('resumed'), [
      'validate=False',
      'sharded_optimizer=True',
      `checkpoints=${path.join(dir('sharded'), 'HarDNet39ds', '0')}`,
      'last_epoch=0',
    ]),
  ]);
  assert.equal(c.code, 0, c.out);
  const file = (k: keyof typeof runs, epoch: string, name: string) =>
    fs.readFileSync(path.join(dir(k), 'HarDNet39ds', epoch, name));
  for (const name of ['weights.bin', 'optimizer.bin']) {
    for (const epoch of ['0', '1'])
      assert.ok(file('plain', epoch, name).equals(file('sharded', epoch, name)), `epoch ${epoch} ${name} differs`);
    assert.ok(file('plain', '1', name).equals(file('resumed', '1', name)), `resumed ${name} differs`);
  }
});

test('two fresh runs with the default seed end with the same weights, bit for bit', () => {
  const [a, b] = ['fresh-a', 'fresh-b'].map((d) => path.join(tmp, d));
  for (const out of [a, b]) {
    const r = runWorker(['train', ...small(out, ['epochs=1', 'validate=False'])]);
    assert.equal(r.code, 0, r.out);
  }
  assert.ok(weightsBin(a, '0').equals(weightsBin(b, '0')), 'a fresh run does not repeat itself');
});

test('mixup (use_mix with TRAIN.mix) trains and logs no train accuracy, as PaddleClas does', () => {
  const r = runWorker([
    'train',
    ...small(path.join(tmp, 'mix'), [
      'epochs=1',
      'validate=False',
      'use_mix=True',
      "TRAIN.mix=[{'CutmixOperator': {'alpha': 0.2}}]",
    ]),
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /epoch:0 {2}, train step:2 {3}, loss: +\d\.\d{5}, lr: /);
  assert.doesNotMatch(r.out, /train step:\d+ +, top1/);
});

test("the reproduction's real config (HarDNet68_best_v2.yaml) runs unchanged apart from data paths and a small batch", () => {
  const cfg = path.resolve(REPO_ROOT, 'configs/HarDNet68_best_v2.yaml');
  const two = head(data.train, 2, path.join(tmp, 'train2.txt'));
  const r = runWorker([
    'train',
    '-c',
    cfg,
    ...[
      `TRAIN.file_list=${two}`,
      `TRAIN.data_dir=${data.dir}`,
      `VALID.file_list=${two}`,
      `VALID.data_dir=${data.dir}`,
      'TRAIN.batch_size=2',
      'VALID.batch_size=2',
      'total_images=2',
      'epochs=1',
      `model_save_dir=${path.join(tmp, 'h68')}`,
      'backend=wasm',
    ].flatMap((o) => ['-o', o]),
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(
    r.out,
    /epoch:0 {2}, train step:0 {3}, top1: \d\.\d{5}, top5: \d\.\d{5}, loss: +\d\.\d{5}, lr: 0\.050000,/,
  );
  assert.match(r.out, /END epoch:0 {3}valid top1/);
  assert.ok(fs.existsSync(path.join(tmp, 'h68', 'HarDNet68', '0', 'model.json')));
});

test('eval on a checkpoint prints the valid lines and the END line', () => {
  const full = path.join(tmp, 'full');
  const r = runWorker([
    'eval',
    ...small(path.join(tmp, 'evalout'), [`pretrained_model=${path.join(full, 'HarDNet39ds', '1')}`]),
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /epoch:0 {2}, valid step:0 {3}, top1: \d\.\d{5}/);
  assert.match(r.out, /END epoch:0 {3}valid top1: \d\.\d{5}, top5: \d\.\d{5}, loss: +\d\.\d{5}, {2}batch_cost/);
});

test('a checkpoint save killed by SIGKILL leaves the previous checkpoint intact and loadable', async () => {
  const dir = path.join(tmp, 'atomic', 'ckpt');
  const script = path.join(REPO_ROOT, 'dist/test/helpers/checkpoint_saver.js');
  // first a complete checkpoint, then saves in a loop until killed
  const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) =>
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('saved')) resolve();
    }),
  );
  await new Promise((r) => setTimeout(r, 150 + Math.random() * 300));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  const check = spawnSync(process.execPath, [script, dir, '--check'], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  assert.match(check.stdout, /checkpoint ok: epoch \d+/);
});

/**
 * Train on `n` workers under the launcher until every worker logs a step of `epoch`, then send SIGINT to the
 * launcher (a Ctrl-C) or, with `signalRank0`, to rank 0's worker process alone (a Ctrl-C that reached one node
 * only). Returns the launcher's exit code and output and the workers' logs.
 */
async function interruptAtEpoch(
  n: number,
  name: string,
  epoch: number,
  signalRank0 = false,
): Promise<{ code: number | null; logs: string[]; launcherOut: string }> {
  const logDir = path.join(tmp, `log-${name}`);
  const args = [
    '--nproc_per_node',
    String(n),
    '--log_dir',
    logDir,
    'train',
    ...small(path.join(tmp, name), ['epochs=100000', 'validate=False', 'save_interval=100000']),
  ];
  const child = spawn(process.execPath, [LAUNCH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let launcherOut = '';
  for (const s of [child.stdout, child.stderr]) s.on('data', (d: Buffer) => (launcherOut += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const files = Array.from({ length: n }, (_, r) => path.join(logDir, `workerlog.${r}`));
  const reached = new RegExp(`epoch:${epoch} +, train step:`);
  const deadline = Date.now() + 120_000;
  while (!files.every((f) => fs.existsSync(f) && reached.test(fs.readFileSync(f, 'utf8')))) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      assert.fail(`the workers never reached epoch ${epoch}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  if (signalRank0) {
    // the launcher's worker table: rank, local_rank, device, pid, log
    const pid = /^\s*0\s+0\s+\S+\s+(\d+)\s/m.exec(launcherOut)?.[1];
    assert.ok(pid, `no pid for rank 0 in the launcher's output:\n${launcherOut}`);
    process.kill(Number(pid), 'SIGINT');
  } else child.kill('SIGINT');
  // generous: the stop waits for the step in flight; a launcher that ignores Ctrl-C never exits
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await exited;
  clearTimeout(timer);
  return { code, logs: files.map((f) => fs.readFileSync(f, 'utf8')), launcherOut };
}

test('Ctrl-C stops a single worker after its step even when no step does I/O (decode cache warm)', async () => {
  // 96 images in 3 steps per epoch: from epoch 1 on every image comes from the decode cache and a step awaits nothing
  // but settled promises, so only the loop's explicit turn of the event loop lets the SIGINT handler run
  const {
    code,
    logs: [log],
  } = await interruptAtEpoch(1, 'ctrlc', 3);
  assert.equal(
    code,
    130,
    `the launcher did not stop within 60 s of SIGINT (exit ${code}); workerlog.0 ends:\n${log.slice(-600)}`,
  );
  assert.match(log, /SIGINT received: stopping after this step/);
  assert.match(log, /stopped on request in epoch \d+ after iteration \d+/);
});

test('Ctrl-C with 2 workers under the launcher: both stop after the same step and the launcher exits 130', async () => {
  const { code, logs } = await interruptAtEpoch(2, 'ctrlc2', 1);
  assert.equal(
    code,
    130,
    `the launcher did not stop within 60 s of SIGINT (exit ${code}); workerlog.0 ends:\n${logs[0].slice(-600)}`,
  );
  const stops = logs.map((t, r) => {
    assert.match(t, /SIGINT received: stopping after this step/, `rank ${r}`);
    const m = /stopped on request in epoch (\d+) after iteration (\d+)/.exec(t);
    assert.ok(m, `rank ${r} did not stop cleanly:\n${t.slice(-600)}`);
    return m![0];
  });
  assert.equal(stops[0], stops[1], 'the two workers stopped after different steps');
});

test('SIGINT to one worker alone: the other stops after the same step, saying why, and the launcher reports it', async () => {
  const { code, logs, launcherOut } = await interruptAtEpoch(2, 'ctrlc-rank0', 1, true);
  assert.match(logs[0], /SIGINT received: stopping after this step/);
  assert.doesNotMatch(logs[1], /SIGINT received/);
  assert.match(logs[1], /another worker was asked to stop: stopping after this step with it/);
  const stops = logs.map((t, r) => {
    const m = /stopped on request in epoch (\d+) after iteration (\d+)/.exec(t);
    assert.ok(m, `rank ${r} did not stop cleanly:\n${t.slice(-600)}`);
    return m![0];
  });
  assert.equal(stops[0], stops[1], 'the two workers stopped after different steps');
  // nobody asked the launcher to stop: a worker that exits 130 of its own accord is a failed worker to it
  assert.notEqual(code, 0, launcherOut.slice(-1500));
  assert.match(launcherOut, /exit code 130/, launcherOut.slice(-1500));
});
