/**
 * With a GPU assigned the job trains on it or refuses to start: the launcher's check (launcher/gpu_backend.ts)
 * before any worker runs, the CPU on purpose (backend wasm/cpu, use_gpu False), and the TensorFlow settings every
 * worker gets.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { checkGpuBackend, gpuBackendRefusal, resolvesHere } from '../launcher/gpu_backend.js';
import { LaunchError, buildPlan, workerProcessEnv } from '../launcher/plan.js';
import { launch, tempDir } from './helpers/launcher_spawn.js';

const GPU = '@tensorflow/tfjs-node-gpu';
const installed = (pkgs: string[]) => (pkg: string) => pkgs.includes(pkg);

test('the decision: GPUs + auto/tensorflow need tfjs-node-gpu; the CPU on purpose or no GPU never refuse', () => {
  const refuse = (f: Partial<Parameters<typeof gpuBackendRefusal>[0]>) =>
    gpuBackendRefusal({ gpus: ['0', '1'], backend: 'auto', useGpu: true, resolves: installed([]), ...f });
  const why = refuse({});
  assert.match(
    why!,
    /^GPU 0,1 assigned, but @tensorflow\/tfjs-node-gpu is not installed: backend 'auto' would train on the CPU\./,
  );
  assert.match(
    why!,
    /Install it with `npm install @tensorflow\/tfjs-node-gpu` \(libtensorflow 2\.9\.1, needs CUDA 11\.2 and cuDNN 8\.1\)/,
  );
  assert.match(why!, /on purpose with -o backend=wasm \(or -o use_gpu=False\)/);
  // tfjs-node (CPU) alone does not do on a GPU job: it would be libtensorflow on the CPU
  assert.match(
    refuse({ backend: 'tensorflow', resolves: installed(['@tensorflow/tfjs-node']) })!,
    /backend 'tensorflow' would train on the CPU/,
  );
  assert.equal(refuse({ resolves: installed([GPU]) }), undefined);
  assert.equal(refuse({ backend: 'tensorflow', resolves: installed([GPU]) }), undefined);
  assert.equal(refuse({ backend: 'wasm' }), undefined);
  assert.equal(refuse({ backend: 'cpu' }), undefined);
  assert.equal(refuse({ useGpu: false }), undefined);
  assert.equal(refuse({ gpus: null }), undefined);
  assert.equal(refuse({ gpus: [] }), undefined);
});

test('the CLI check reads backend and use_gpu from the config and its -o overrides, for train and eval only', () => {
  const none = installed([]);
  assert.throws(
    () => checkGpuBackend('train', [], ['0'], none),
    (e: Error) => e instanceof LaunchError && /backend 'auto'/.test(e.message),
  );
  assert.throws(() => checkGpuBackend('eval', ['-o', 'pretrained_model=x.pth'], ['3'], none), /GPU 3 assigned/);
  assert.throws(() => checkGpuBackend('train', ['-o', 'backend=tensorflow'], ['0'], none), /backend 'tensorflow'/);
  checkGpuBackend('train', ['-o', 'backend=wasm'], ['0'], none);
  checkGpuBackend('train', ['-o', 'use_gpu=False'], ['0'], none);
  checkGpuBackend('train', [], ['0'], installed([GPU]));
  checkGpuBackend('train', [], null, none);
  checkGpuBackend('run', ['--', 'true'], ['0'], none);
  // a config that does not load is reported by the usual path, not here
  checkGpuBackend('train', ['-c', '/nonexistent/config.yaml'], ['0'], none);
  // this machine's installation, as the worker's import() sees it
  assert.equal(resolvesHere('commander'), true);
  assert.equal(resolvesHere('@tensorflow/no-such-package'), false);
});

test('launch --gpus 0 train without tfjs-node-gpu exits 2 before starting a worker; -o backend=wasm starts one on the CPU on purpose', async (t) => {
  if (resolvesHere(GPU)) {
    t.skip('tfjs-node-gpu is installed here: the refusal cannot happen');
    return;
  }
  const dir = tempDir('launch-gpu');
  const refused = await launch(['--gpus', '0', '--log_dir', path.join(dir, 'log'), 'train'], {
    env: { CUDA_VISIBLE_DEVICES: undefined },
  });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(
    refused.stderr,
    /^launch: GPU 0 assigned, but @tensorflow\/tfjs-node-gpu is not installed: backend 'auto' would train on the CPU\. Install it with `npm install @tensorflow\/tfjs-node-gpu`/m,
  );
  assert.equal(fs.existsSync(path.join(dir, 'log')), false, 'no worker, no log directory');
  // on purpose: the worker starts, says it runs on the CPU with a GPU assigned, then fails on corrupt weights (a
  // file that exists passes the launcher's preflight; only the worker reads it)
  const log = path.join(dir, 'log2');
  const corrupt = path.join(dir, 'corrupt.pth');
  fs.writeFileSync(corrupt, 'not a .pth file');
  const cpu = await launch(
    [
      '--gpus',
      '0',
      '--log_dir',
      log,
      'train',
      '-o',
      'backend=wasm',
      '-o',
      `model_save_dir=${path.join(dir, 'out')}`,
      '-o',
      `pretrained_model=${corrupt}`,
    ],
    { env: { CUDA_VISIBLE_DEVICES: undefined } },
  );
  assert.equal(cpu.code, 1, cpu.stderr);
  assert.match(
    fs.readFileSync(path.join(log, 'workerlog.0'), 'utf8'),
    /backend: wasm on CPU \(WebAssembly, on purpose: a GPU is assigned \(CUDA_VISIBLE_DEVICES=0\) but backend 'wasm' was asked for\) \(requested\)/,
  );
});

test('workers get TF_FORCE_GPU_ALLOW_GROWTH=true and TF_CPP_MIN_LOG_LEVEL=2 unless the user set them', () => {
  const plan = buildPlan({
    devices: { gpus: ['2'], nproc: 1 },
    nodes: { hosts: ['127.0.0.1'], nodeRank: 0, source: 'single' },
    jobId: 'g',
    basePort: 40000,
    logDir: 'log',
  });
  const env = workerProcessEnv(plan.workers[0]!, { PATH: '/bin' }, 0, undefined);
  assert.deepEqual(
    [env.TF_FORCE_GPU_ALLOW_GROWTH, env.TF_CPP_MIN_LOG_LEVEL, env.CUDA_VISIBLE_DEVICES],
    ['true', '2', '2'],
  );
  const mine = workerProcessEnv(
    plan.workers[0]!,
    { PATH: '/bin', TF_FORCE_GPU_ALLOW_GROWTH: 'false', TF_CPP_MIN_LOG_LEVEL: '0' },
    0,
    undefined,
  );
  assert.deepEqual([mine.TF_FORCE_GPU_ALLOW_GROWTH, mine.TF_CPP_MIN_LOG_LEVEL], ['false', '0']);
});
