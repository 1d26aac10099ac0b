/** What the launcher plans to start: devices, nodes, ranks, endpoints, environment; and its failure helpers. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { BAD_SLURM_HOSTLISTS, SLURM_HOSTLISTS } from './helpers/slurm_hostlists.js';
import { readWorkerEnv } from '../shared/env.js';
import { trainArgs } from '../launcher/cli.js';
import {
  exitCodeOf,
  formatRootCause,
  kernelLogNamesOomKill,
  readOomKillCount,
  type WorkerExit,
} from '../launcher/failure.js';
import { tailLines } from '../launcher/logs.js';
import {
  LaunchError,
  buildPlan,
  chooseDevices,
  chooseJobId,
  chooseNodes,
  expandSlurmNodelist,
  parseGpuList,
  workerProcessEnv,
} from '../launcher/plan.js';
import { tempDir } from './helpers/launcher_spawn.js';

const noGpus = () => [];

test('GPU lists: ids, and malformed lists are errors that say what was expected', () => {
  assert.deepEqual(parseGpuList('0,1, 3'), ['0', '1', '3']);
  assert.throws(
    () => parseGpuList('0,x'),
    /--gpus expects a comma-separated list of GPU ids such as 0,1,2,3; got "0,x" \("x" is not a GPU id\)/,
  );
  assert.throws(() => parseGpuList('', '--selected_gpus'), /--selected_gpus expects a comma-separated list/);
  assert.throws(() => parseGpuList('1,1'), /lists GPU 1 twice/);
});

test('devices: --gpus inside CUDA_VISIBLE_DEVICES, never remapped; defaults from the visible GPUs, else CPU', () => {
  assert.deepEqual(chooseDevices({ gpus: '2,3', env: { CUDA_VISIBLE_DEVICES: '1,2,3' }, detectGpus: noGpus }), {
    gpus: ['2', '3'],
    nproc: 2,
  });
  assert.throws(
    () => chooseDevices({ gpus: '0,4', env: { CUDA_VISIBLE_DEVICES: '0,1' }, detectGpus: noGpus }),
    /--gpus 0,4: GPU 4 is not in CUDA_VISIBLE_DEVICES="0,1"/,
  );
  assert.deepEqual(chooseDevices({ env: {}, detectGpus: () => ['0', '1', '2'] }), { gpus: ['0', '1', '2'], nproc: 3 });
  assert.deepEqual(chooseDevices({ env: { CUDA_VISIBLE_DEVICES: '5,7' }, detectGpus: () => ['0'] }), {
    gpus: ['5', '7'],
    nproc: 2,
  });
  assert.deepEqual(chooseDevices({ env: {}, nprocPerNode: 2, detectGpus: () => ['0', '1', '2'] }), {
    gpus: ['0', '1'],
    nproc: 2,
  });
  assert.deepEqual(chooseDevices({ env: {}, detectGpus: noGpus }), { gpus: null, nproc: 1 });
  assert.deepEqual(chooseDevices({ env: { CUDA_VISIBLE_DEVICES: '' }, nprocPerNode: 4, detectGpus: () => ['0'] }), {
    gpus: null,
    nproc: 4,
  });
  assert.throws(
    () => chooseDevices({ gpus: '0,1', nprocPerNode: 3, env: {}, detectGpus: noGpus }),
    /--nproc_per_node 3 disagrees with --gpus 0,1/,
  );
});

test('Slurm hostlists expand like scontrol show hostnames', () => {
  for (const [list, hosts] of SLURM_HOSTLISTS) assert.deepEqual(expandSlurmNodelist(list), hosts, list);
  for (const list of BAD_SLURM_HOSTLISTS) assert.throws(() => expandSlurmNodelist(list), /SLURM_JOB_NODELIST=/, list);
  assert.throws(() => expandSlurmNodelist('n[1-x]'), /SLURM_JOB_NODELIST="n\[1-x\]": cannot read the range "1-x"/);
  assert.throws(() => expandSlurmNodelist('n[1-2'), /a '\[' without its '\]'/);
  // bounded: a list that would expand to billions of names fails at once
  assert.throws(() => expandSlurmNodelist('n[0-65535][0-65535]'), /more than 65536 hosts/);
  assert.equal(expandSlurmNodelist('n[1-65536]').length, 65536);
  // a suffix after the last group (newer Slurm releases accept it; 22.05's scontrol does not)
  assert.deepEqual(expandSlurmNodelist('a[1-2]-ib'), ['a1-ib', 'a2-ib']);
});

test("Slurm nodes: the srun step's node list and SLURM_NODEID; one launcher per node; outside a step no peers are assumed", () => {
  const step = {
    SLURM_JOB_NODELIST: 'gpu[01-04]',
    SLURM_STEP_NODELIST: 'gpu[02-03]',
    SLURM_NODEID: '1',
    SLURM_STEP_TASKS_PER_NODE: '1(x2)',
  };
  assert.deepEqual(chooseNodes({ env: step, localAddresses: [] }), {
    hosts: ['gpu02', 'gpu03'],
    nodeRank: 1,
    source: 'slurm',
  });
  assert.throws(
    () => chooseNodes({ env: { ...step, SLURM_STEP_TASKS_PER_NODE: '2(x2)' }, localAddresses: [] }),
    /SLURM_STEP_TASKS_PER_NODE=2\(x2\).*srun --ntasks-per-node=1/,
  );
  assert.throws(
    () => chooseNodes({ env: { ...step, SLURM_NODEID: '2' }, localAddresses: [] }),
    /SLURM_NODEID="2" is not a node index of SLURM_STEP_NODELIST gpu02,gpu03/,
  );
  // the batch script of a 4-node job: nothing would start the other three launchers
  assert.throws(
    () => chooseNodes({ env: { SLURM_JOB_NODELIST: 'gpu[01-04]', SLURM_NODEID: '0' }, localAddresses: [] }),
    /has 4 nodes, but this launcher is not in an srun step/,
  );
  assert.deepEqual(chooseNodes({ env: { SLURM_JOB_NODELIST: 'gpu01', SLURM_NODEID: '0' }, localAddresses: [] }), {
    hosts: ['127.0.0.1'],
    nodeRank: 0,
    source: 'single',
  });
  assert.deepEqual(
    chooseNodes({ env: { SLURM_STEP_NODELIST: 'gpu01', SLURM_NODEID: '0' }, localAddresses: [] }).hosts,
    ['gpu01'],
  );
  // --ips wins over Slurm's variables
  assert.equal(chooseNodes({ ips: '10.0.0.1,10.0.0.2', nodeRank: 0, env: step, localAddresses: [] }).source, '--ips');
});

test('nodes: from --ips and a local address, from --node_rank, from Slurm; ambiguity is an error', () => {
  assert.deepEqual(chooseNodes({ ips: '10.0.0.1,10.0.0.2', env: {}, localAddresses: ['127.0.0.1', '10.0.0.2'] }), {
    hosts: ['10.0.0.1', '10.0.0.2'],
    nodeRank: 1,
    source: '--ips',
  });
  assert.throws(
    () => chooseNodes({ ips: '10.0.0.1,10.0.0.2', env: {}, localAddresses: ['127.0.0.1'] }),
    /none of this machine's addresses \(127\.0\.0\.1\) is in --ips.*give --node_rank/,
  );
  assert.throws(
    () => chooseNodes({ ips: '127.0.0.1,127.0.0.1', env: {}, localAddresses: ['127.0.0.1'] }),
    /matches several nodes.*give --node_rank/,
  );
  assert.equal(
    chooseNodes({ ips: '127.0.0.1,127.0.0.1', nodeRank: 1, env: {}, localAddresses: ['127.0.0.1'] }).nodeRank,
    1,
  );
  assert.throws(
    () => chooseNodes({ ips: 'a,b', nodeRank: 2, env: {}, localAddresses: [] }),
    /--node_rank 2 is not below the number of nodes 2/,
  );
  assert.deepEqual(
    chooseNodes({
      env: { SLURM_JOB_NODELIST: 'gpu[1-3]', SLURM_STEP_NODELIST: 'gpu[1-3]', SLURM_NODEID: '2', SLURM_PROCID: '2' },
      localAddresses: [],
    }),
    {
      hosts: ['gpu1', 'gpu2', 'gpu3'],
      nodeRank: 2,
      source: 'slurm',
    },
  );
  assert.throws(
    () => chooseNodes({ ips: '10.0.0.1,,x', env: {}, localAddresses: [] }),
    /--ips expects a comma-separated list/,
  );
});

test('job ids: random on one node, the same on every node of a multi-node job', () => {
  const one = { env: {}, hosts: ['127.0.0.1'], basePort: 6170, argv: ['train'] };
  assert.notEqual(chooseJobId(one), chooseJobId(one));
  const many = { env: {}, hosts: ['10.0.0.1', '10.0.0.2'], basePort: 6170, argv: ['train'] };
  assert.equal(chooseJobId(many), chooseJobId(many));
  assert.notEqual(chooseJobId(many), chooseJobId({ ...many, argv: ['eval'] }));
  assert.equal(chooseJobId({ ...many, env: { SLURM_JOB_ID: '4711' } }), 'slurm-4711');
  assert.equal(chooseJobId({ ...many, env: { SLURM_JOB_ID: '4711', SLURM_STEP_ID: '3' } }), 'slurm-4711.3');
  assert.throws(() => chooseJobId({ ...one, jobId: 'a b' }), /--job_id "a b"/);
});

test('plan: global rank = node rank * procs per node + local rank; tcp endpoints across nodes; one GPU per worker', () => {
  const plan = buildPlan({
    devices: { gpus: ['4', '6'], nproc: 2 },
    nodes: { hosts: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], nodeRank: 1, source: '--ips' },
    jobId: 'j1',
    basePort: 6170,
    logDir: '/tmp/log',
  });
  assert.equal(plan.worldSize, 6);
  assert.deepEqual(
    plan.workers.map((w) => [w.rank, w.localRank, w.device]),
    [
      [2, 0, 'gpu 4'],
      [3, 1, 'gpu 6'],
    ],
  );
  assert.deepEqual(
    plan.endpoints,
    ['10.0.0.1:6170', '10.0.0.1:6171', '10.0.0.2:6170', '10.0.0.2:6171', '10.0.0.3:6170', '10.0.0.3:6171'].map(
      (e) => `tcp://${e}`,
    ),
  );
  const env = workerProcessEnv(plan.workers[1], { PATH: '/bin', HARDNET_SECRET_FD: '9' }, 2, undefined);
  assert.equal(env.CUDA_VISIBLE_DEVICES, '6');
  assert.equal(env.CUDA_DEVICE_ORDER, 'PCI_BUS_ID');
  assert.equal(env.HARDNET_SECRET_FD, undefined, 'an inherited secret fd is not passed on');
  assert.equal(env.PATH, '/bin');
  const back = readWorkerEnv(env);
  assert.deepEqual(
    [
      back.rank,
      back.localRank,
      back.worldSize,
      back.localWorldSize,
      back.nodeRank,
      back.currentEndpoint,
      back.masterAddr,
      back.masterPort,
      back.selectedGpus,
      back.restartCount,
    ],
    [3, 1, 6, 2, 1, 'tcp://10.0.0.2:6171', '10.0.0.1', 6170, '6', 2],
  );
});

test('plan: ipc endpoints in a per-job directory on one node; a single worker has no endpoints at all', () => {
  const two = buildPlan({
    devices: { gpus: null, nproc: 2 },
    nodes: { hosts: ['127.0.0.1'], nodeRank: 0, source: 'single' },
    jobId: 'abc',
    basePort: 40000,
    logDir: 'log',
    ipcRoot: '/tmp',
  });
  // the directory's name has a random part (the launcher creates it; nobody can make it first)
  assert.match(two.ipcDir!, /^\/tmp\/hardnet-abc-[0-9a-f]{8}$/);
  assert.deepEqual(two.endpoints, [`ipc://${two.ipcDir}/rank0.sock`, `ipc://${two.ipcDir}/rank1.sock`]);
  const one = buildPlan({
    devices: { gpus: ['3'], nproc: 1 },
    nodes: { hosts: ['127.0.0.1'], nodeRank: 0, source: 'single' },
    jobId: 'abc',
    basePort: 40000,
    logDir: 'log',
  });
  assert.deepEqual(
    [one.worldSize, one.endpoints, one.workers[0].env.currentEndpoint, one.ipcDir],
    [1, [], '', undefined],
  );
  assert.throws(
    () =>
      buildPlan({
        devices: { gpus: null, nproc: 2 },
        nodes: { hosts: ['127.0.0.1'], nodeRank: 0, source: 'single' },
        jobId: 'abc',
        basePort: 1,
        logDir: 'log',
        ipcRoot: '/' + 'x'.repeat(100),
      }),
    LaunchError,
  );
});

test('restarts of train resume from the last checkpoint unless the user chose --resume', () => {
  assert.deepEqual(trainArgs(['-c', 'a.yaml'], 0), ['-c', 'a.yaml']);
  assert.deepEqual(trainArgs(['-c', 'a.yaml'], 1), ['-c', 'a.yaml', '--resume', 'auto']);
  assert.deepEqual(trainArgs(['--resume=ckpt/3'], 2), ['--resume=ckpt/3']);
});

test('failure: exit codes, the OOM killer in the kernel log and in cgroup counters, the root-cause block', () => {
  const base: WorkerExit = {
    rank: 3,
    localRank: 1,
    pid: 4242,
    code: null,
    signal: 'SIGKILL',
    startedAt: 0,
    endedAt: 125_000,
    logPath: 'log/workerlog.1',
  };
  assert.equal(exitCodeOf(base), 137);
  assert.equal(exitCodeOf({ ...base, signal: null, code: 3 }), 3);
  assert.equal(exitCodeOf({ ...base, signal: 'SIGSEGV' }), 139);
  assert.equal(kernelLogNamesOomKill('[ 12.3] Out of memory: Killed process 4242 (node) total-vm:1kB', 4242), true);
  assert.equal(kernelLogNamesOomKill('[ 12.3] Memory cgroup out of memory: Killed process 4242 (node)', 4242), true);
  assert.equal(kernelLogNamesOomKill('oom-kill:constraint=CONSTRAINT_MEMCG,task=node,pid=4242,uid=0', 4242), true);
  assert.equal(kernelLogNamesOomKill('Out of memory: Killed process 42420 (node)', 4242), false);

  const dir = tempDir('launch-cgroup');
  fs.writeFileSync(path.join(dir, 'cgroup-v1'), '4:memory:/job/a\n1:cpu:/\n');
  fs.mkdirSync(path.join(dir, 'memory', 'job', 'a'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'memory', 'job', 'a', 'memory.oom_control'),
    'oom_kill_disable 0\nunder_oom 0\noom_kill 7\n',
  );
  assert.equal(readOomKillCount(path.join(dir, 'cgroup-v1'), dir), 7);
  fs.writeFileSync(path.join(dir, 'cgroup-v2'), '0::/user/b\n');
  fs.mkdirSync(path.join(dir, 'user', 'b'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'user', 'b', 'memory.events'), 'low 0\nhigh 0\nmax 2\noom 2\noom_kill 2\n');
  assert.equal(readOomKillCount(path.join(dir, 'cgroup-v2'), dir), 2);
  assert.equal(readOomKillCount(path.join(dir, 'missing'), dir), undefined);

  const block = formatRootCause({
    first: base,
    worldSize: 8,
    oom: 'the kernel log names this pid',
    tail: ['a', 'b'],
    attempt: 0,
    maxRestarts: 0,
  });
  assert.match(block, /first failure: rank 3 \(local rank 1\) of 8, pid 4242/);
  assert.match(block, /killed by signal SIGKILL \(9\) -- killed by the kernel's OOM killer/);
  assert.match(block, /ran for:\s+2 min 5 s/);
  assert.match(block, /---- last 2 lines of log\/workerlog.1 ----\na\nb\n/);
});

test('tailLines returns the last lines of a log', () => {
  const file = path.join(tempDir('launch-tail'), 'workerlog.0');
  fs.writeFileSync(file, Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\n');
  assert.deepEqual(tailLines(file, 3), ['line 97', 'line 98', 'line 99']);
  assert.deepEqual(tailLines(file + '.missing', 3), []);
});
