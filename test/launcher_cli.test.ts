/** The `launch` command line: help at every level, usage errors, devices and the environment the workers get. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { COMMANDS } from '../shared/commands.js';
import { TEST_WORKER, launch, records, tempDir } from './helpers/launcher_spawn.js';

test('--help at every level lists the options that level takes', async () => {
  const top = await launch(['--help']);
  assert.equal(top.code, 0);
  for (const flag of [
    '--gpus',
    '--selected_gpus',
    '--nproc_per_node',
    '--ips',
    '--node_rank',
    '--log_dir',
    '--max_restarts',
    '--grace',
    '--started_port',
  ])
    assert.match(top.stdout, new RegExp(flag));
  for (const c of COMMANDS) assert.match(top.stdout, new RegExp(`\\n  ${c.name} `));
  assert.match(top.stdout, /\n {2}run <program> \[args\.\.\.\]/);
  const train = await launch(['train', '--help']);
  assert.equal(train.code, 0);
  assert.match(train.stdout, /-c, --config <file>/);
  assert.match(train.stdout, /--resume <dir\|auto>/);
  const run = await launch(['run', '--help']);
  assert.match(run.stdout, /like torchrun --no-python/);
});

test('usage errors say what was expected and exit 2', async () => {
  const unknown = await launch(['--bogus', 'run', '--', 'true']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
  const unknownSub = await launch(['train', '--bogus']);
  assert.equal(unknownSub.code, 2);
  assert.match(unknownSub.stderr, /unknown option '--bogus'/);
  const gpus = await launch(['--gpus', '0,a', 'run', '--', 'true']);
  assert.equal(gpus.code, 2);
  assert.match(gpus.stderr, /--gpus expects a comma-separated list of GPU ids such as 0,1,2,3; got "0,a"/);
  const nproc = await launch(['--nproc_per_node', 'two', 'run', '--', 'true']);
  assert.equal(nproc.code, 2);
  assert.match(nproc.stderr, /--nproc_per_node.*expected a worker count/);
  const outside = await launch(['--gpus', '2', 'run', '--', 'true'], { env: { CUDA_VISIBLE_DEVICES: '0,1' } });
  assert.equal(outside.code, 2);
  assert.match(outside.stderr, /GPU 2 is not in CUDA_VISIBLE_DEVICES="0,1"/);
  const noSecret = await launch(['--ips', '10.0.0.1,10.0.0.2', '--node_rank', '0', 'run', '--', 'true']);
  assert.equal(noSecret.code, 2);
  assert.match(noSecret.stderr, /several nodes need one shared job secret: give --secret_file/);
});

test('one worker per --gpus id, each seeing only its GPU, with both env families and the secret on fd 3', async () => {
  const dir = tempDir('launch-gpus');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  // the ids are physical; no GPU is touched, so this runs on any machine
  const r = await launch(
    [
      '--selected_gpus',
      '1,3',
      '--log_dir',
      path.join(dir, 'log'),
      'run',
      '--',
      process.execPath,
      TEST_WORKER,
      '--out',
      out,
      '--read-secret',
      '--done-after',
      '50',
    ],
    {
      env: { CUDA_VISIBLE_DEVICES: '0,1,2,3' },
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const recs = records(out, 2)!;
  const jobId = recs[0].env.HARDNET_JOB_ID;
  const ipcDir = /^ipc:\/\/(.*)\/rank0\.sock,/.exec(recs[0].env.PADDLE_TRAINER_ENDPOINTS)?.[1] ?? '';
  assert.match(ipcDir, new RegExp(`^${path.join(os.tmpdir(), `hardnet-${jobId}`)}-[0-9a-f]{8}$`));
  const endpoints = [0, 1].map((rank) => `ipc://${ipcDir}/rank${rank}.sock`);
  for (const [rank, gpu] of [
    [0, '1'],
    [1, '3'],
  ] as const) {
    const e = recs[rank].env;
    assert.deepEqual(
      [
        e.CUDA_VISIBLE_DEVICES,
        e.CUDA_DEVICE_ORDER,
        e.FLAGS_selected_gpus,
        e.RANK,
        e.PADDLE_TRAINER_ID,
        e.LOCAL_RANK,
        e.WORLD_SIZE,
        e.PADDLE_TRAINERS_NUM,
        e.LOCAL_WORLD_SIZE,
      ],
      [gpu, 'PCI_BUS_ID', gpu, String(rank), String(rank), String(rank), '2', '2', '2'],
    );
    assert.equal(e.PADDLE_TRAINER_ENDPOINTS, endpoints.join(','));
    assert.equal(e.PADDLE_CURRENT_ENDPOINT, endpoints[rank]);
    assert.equal(e.MASTER_ADDR, '127.0.0.1');
    assert.ok(Number(e.MASTER_PORT) > 0);
    assert.equal(e.HARDNET_LOG_DIR, path.join(dir, 'log'));
    assert.equal(e.HARDNET_SECRET_FD, '3');
    const secret = JSON.parse(recs[rank].secret!) as { jobId: string; curve: Record<string, string> };
    assert.equal(secret.jobId, jobId);
    assert.equal(secret.curve.serverPublicKey.length, 40);
    assert.ok(
      !Object.values(e).some((v) => v.includes(secret.curve.serverSecretKey)),
      'the secret is not in the environment',
    );
  }
  assert.equal(recs[0].secret, recs[1].secret, 'one secret per job');
  assert.match(
    r.stderr,
    /rank\s+local_rank\s+device\s+pid\s+log\n\[?.*0\s+0\s+gpu 1\s+\d+\s+\S+workerlog\.0\n.*1\s+1\s+gpu 3\s+\d+\s+\S+workerlog\.1/,
  );
  assert.match(
    fs.readFileSync(path.join(dir, 'log', 'endpoints.log'), 'utf8'),
    new RegExp(`rank 1: ${endpoints[1].replace(/[.]/g, '\\.')}`),
  );
  assert.equal(fs.existsSync(ipcDir), false, 'the ipc directory is removed at the end');
});

test('summary runs in one foreground process (no supervised workers, no log_dir)', async () => {
  const dir = tempDir('launch-summary');
  const r = await launch(['summary', '-m', 'HarDNet39ds', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { model: string }).model, 'HarDNet39ds');
  assert.equal(fs.existsSync(path.join(dir, 'log')), false);
});
