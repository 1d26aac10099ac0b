/**
 * Usage errors before anything starts (launcher/preflight.ts): a bad config, override, architecture, file list,
 * data_dir, pretrained_model or checkpoint ends `launch train|eval` with one line naming the file and the key and
 * exit code 2, before any worker starts or log/ changes, whatever --max_restarts says. Errors only a running worker
 * can meet (a corrupt image under strict_data, a peer that stops answering) still end in the root-cause block.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { quickstartConfigPath } from '../shared/config.js';
import { launch, startLaunch, tempDir, waitFor } from './helpers/launcher_spawn.js';
import { writeTestImages } from './helpers/images.js';

const QUICKSTART = quickstartConfigPath();
let dir = '';
let images = '';
let list = '';

/** Every file under `d` with its contents, to show that a refused launch left log/ exactly as it was. */
function snapshot(d: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(d, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    out[path.relative(d, p)] = e.isFile() ? fs.readFileSync(p, 'utf8') : '<dir>';
  }
  return out;
}

before(async () => {
  dir = tempDir('launch-preflight');
  ({ list, images } = await writeTestImages(dir, 8));
});

/** A small real training run on the 8 images above, 2 CPU workers. */
function small(extra: string[] = [], fileList = list): string[] {
  return [
    `TRAIN.file_list=${fileList}`,
    `TRAIN.data_dir=${images}`,
    'validate=False',
    'total_images=8',
    'TRAIN.batch_size=8',
    'epochs=1',
    `model_save_dir=${path.join(dir, 'out')}`,
    'backend=wasm',
    'print_interval=1',
    ...extra,
  ].flatMap((o) => ['-o', o]);
}

test('usage errors in the config: one line naming the file and key, exit 2, log/ untouched, no worker, no restart', async () => {
  const badYaml = path.join(dir, 'bad.yaml');
  fs.writeFileSync(badYaml, 'mode: train\nARCHITECTURE:\n  name: HarDNet39ds\n   params: {}\n');
  const cases: { args: string[]; expect: RegExp }[] = [
    {
      args: ['train', '-c', badYaml],
      expect: new RegExp(`config ${badYaml} is not valid YAML: bad indentation .*\\(4:\\d+\\)$`),
    },
    { args: ['train', '-c', path.join(dir, 'missing.yaml')], expect: /cannot read config .*missing\.yaml: ENOENT$/ },
    {
      args: ['train', '-o', 'epochs=three'],
      expect: new RegExp(`^launch: ${QUICKSTART}: config key epochs: must be an integer, got string \\("three"\\)$`),
    },
    {
      args: ['train', '-o', 'TRAIN.nope.x=1'],
      expect: /override 'TRAIN\.nope\.x=1': config key TRAIN\.nope does not exist/,
    },
    { args: ['train', '-o', 'epochs'], expect: /override 'epochs': expected KEY=VALUE/ },
    {
      args: ['train', '-o', 'ARCHITECTURE.name=HarDNet86'],
      expect: /config key ARCHITECTURE\.name: unknown architecture 'HarDNet86'; closest valid names: HarDNet85/,
    },
    {
      args: ['train', '-o', 'LEARNING_RATE.function=Cosin'],
      expect: /config key LEARNING_RATE\.function: unknown schedule 'Cosin'.*did you mean Cosine/,
    },
    {
      args: ['train', '-o', 'TRAIN.batch_size=1'],
      expect: /config key TRAIN\.batch_size: the global batch 1 is smaller than the 2 workers/,
    },
    {
      args: ['train', ...small([], path.join(dir, 'nolist.txt'))],
      expect: new RegExp(`config key TRAIN\\.file_list: "${dir}/nolist\\.txt" does not exist$`),
    },
    {
      args: ['train', ...small([`TRAIN.data_dir=${list}`])],
      expect: /config key TRAIN\.data_dir: ".*train\.txt" is not a directory$/,
    },
    {
      args: [
        'train',
        ...small(['validate=True', `VALID.file_list=${list}`, `VALID.data_dir=${path.join(dir, 'nodir')}`]),
      ],
      expect: /config key VALID\.data_dir: ".*nodir" does not exist$/,
    },
    {
      args: ['train', ...small([`pretrained_model=${path.join(dir, 'HarDNet39ds.pth')}`])],
      expect: /config key pretrained_model: ".*HarDNet39ds\.pth" does not exist$/,
    },
    {
      args: ['train', ...small([`checkpoints=${path.join(dir, 'out', 'HarDNet39ds', '3')}`])],
      expect: /config key checkpoints: ".*HarDNet39ds\/3" does not exist$/,
    },
    {
      args: ['train', '--resume', path.join(dir, 'nockpt'), ...small()],
      expect: /train --resume: ".*nockpt" does not exist$/,
    },
    { args: ['eval', ...small()], expect: /config key pretrained_model: eval needs the weights/ },
  ];
  const logDir = path.join(dir, 'log');
  fs.mkdirSync(logDir);
  fs.writeFileSync(path.join(logDir, 'workerlog.0'), 'the previous run\n');
  fs.writeFileSync(path.join(logDir, 'launch.log'), 'the previous launcher\n');
  const before = snapshot(logDir);
  for (const c of cases) {
    const r = await launch(['--nproc_per_node', '2', '--max_restarts', '2', '--log_dir', logDir, ...c.args], {
      cwd: dir,
    });
    const what = `launch ${c.args.join(' ')}:\n${r.stderr}`;
    assert.equal(r.code, 2, what);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${what}`);
    assert.match(r.stderr.trimEnd(), c.expect, what);
    assert.doesNotMatch(r.stderr, /root cause|\[launch\] job|restart/, what);
    assert.equal(r.stdout, '', what);
    assert.deepEqual(snapshot(logDir), before, `log/ changed: ${what}`);
  }
  assert.ok(!fs.existsSync(path.join(dir, 'out')), 'no worker ran');
});

test('a corrupt image under strict_data, met by a running worker: the root-cause block names the rank and the file', async () => {
  const corrupt = path.join(dir, 'corrupt.txt');
  fs.copyFileSync(path.join(images, 'img0.png'), path.join(images, 'bad.png'));
  fs.truncateSync(path.join(images, 'bad.png'), 40);
  fs.writeFileSync(corrupt, fs.readFileSync(list, 'utf8').replace('img3.png', 'bad.png'));
  const logDir = path.join(dir, 'log-corrupt');
  const r = await launch(
    ['--nproc_per_node', '2', '--grace', '5', '--log_dir', logDir, 'train', ...small(['strict_data=True'], corrupt)],
    { cwd: dir },
  );
  assert.equal(r.code, 1, r.stderr);
  const block = r.stderr.slice(r.stderr.indexOf('root cause'));
  assert.match(block, /first failure: rank [01] \(local rank [01]\) of 2/, r.stderr);
  assert.match(block, /how it ended:\s+exit code 1/);
  assert.match(block, /bad\.png/, "the end of the failed worker's log names the file");
  assert.match(block, /strict_data/);
});

test('a collective timeout, met by running workers: the root-cause block names the rank that stopped answering', async () => {
  const logDir = path.join(dir, 'log-timeout');
  // many epochs so that the job is still running when rank 1 is stopped
  const run = startLaunch(
    [
      '--nproc_per_node',
      '2',
      '--grace',
      '5',
      '--log_dir',
      logDir,
      'train',
      ...small(['epochs=1000', 'collective_timeout_s=3', 'save_interval=1000']),
    ],
    { cwd: dir },
  );
  const log1 = path.join(logDir, 'workerlog.1');
  await waitFor(
    () => fs.existsSync(log1) && /train step:0 /.test(fs.readFileSync(log1, 'utf8')),
    'rank 1 to train a step',
    120_000,
  );
  // rank 1's row of the start-up table: rank, local_rank, device, pid, log
  const pid = Number(/^1 +1 +cpu +(\d+) /m.exec(run.stderr)?.[1]);
  assert.ok(pid > 0, `rank 1's pid in the start-up table:\n${run.stderr}`);
  process.kill(pid, 'SIGSTOP');
  const r = await run.done;
  assert.equal(r.code, 1, r.stderr);
  const block = r.stderr.slice(r.stderr.indexOf('root cause'));
  assert.match(block, /first failure: rank 0 \(local rank 0\) of 2/, r.stderr);
  assert.match(block, /rank 1 (sent nothing|stopped sending|disconnected)/, 'its error names the stopped rank');
});
