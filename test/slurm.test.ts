/**
 * A real Slurm (Debian's slurm-wlm) runs the launcher as it is: two network namespaces joined by a veth pair are
 * two nodes, each with its own slurmd (and its own host name, in its own UTS namespace); slurmctld runs on the
 * first. `srun --nodes=2 --ntasks-per-node=1 launch ... train` starts one launcher per node, which takes its node
 * rank from SLURM_NODEID and the nodes from Slurm's compressed SLURM_STEP_NODELIST; the two trainers all-reduce
 * over TCP by the node names. The host-list table of test/launcher_plan.test.ts is checked against the live
 * `scontrol show hostnames` too.
 *
 * Needs root and the slurm-wlm package (`.ci/run` installs it when it runs as root); otherwise the test says why
 * and skips. The daemons are children of this test and are killed, the namespaces deleted, even when it fails.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { makeJobSecret } from '../worker/collectives/secret.js';
import { CLI, COLLECTIVE_WORKER, tempDir, waitFor } from './helpers/launcher_spawn.js';
import { BAD_SLURM_HOSTLISTS, SLURM_HOSTLISTS } from './helpers/slurm_hostlists.js';
import { deleteNamespaces, ip, joinByVeth } from './helpers/netns.js';
import { writeTestImages } from './helpers/images.js';

// names and addresses of their own: test/launcher_netns.test.ts uses hl-*, 10.231.7.x
const suffix = `${process.pid % 100000}`;
const NS = [`hs-a${suffix}`, `hs-b${suffix}`];
const VETH = [`hsa${suffix}`, `hsb${suffix}`];
const IPS = ['10.232.9.1', '10.232.9.2'];
const NODES = [`hs${suffix}n01`, `hs${suffix}n02`];
const NODELIST = `hs${suffix}n[01-02]`;
const daemons: ChildProcess[] = [];

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (slurmctld and slurmd run as root, in network namespaces)';
  const missing = ['slurmctld', 'slurmd', 'srun', 'sinfo', 'scontrol', 'ip', 'unshare'].filter((c) => !onPath(c));
  if (missing.length > 0) return `Slurm is not installed (no ${missing.join(', ')}; apt-get install slurm-wlm)`;
  return undefined;
}

/**
 * Kill the daemons and whatever still runs in the two namespaces (job steps, launchers, workers of a job cut short),
 * then remove the namespaces; safe to call twice, synchronous (it also runs on process exit).
 */
function tearDown(): void {
  for (const ns of NS) {
    let pids: string[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split(/\s+/)
        .filter((p) => /^\d+$/.test(p));
    } catch {
      /* no such namespace */
    }
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (const d of daemons) {
    if (d.exitCode === null && d.signalCode === null && d.pid !== undefined) {
      try {
        process.kill(d.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  deleteNamespaces(NS);
  for (const ns of NS) fs.rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}

function setUpNetwork(): void {
  for (const ns of NS) ip('netns', 'add', ns);
  joinByVeth(NS, VETH, IPS);
  for (const i of [0, 1]) {
    // `ip netns exec` mounts /etc/netns/<ns>/hosts over /etc/hosts: the node names resolve, as DNS does on a cluster
    fs.mkdirSync(`/etc/netns/${NS[i]}`, { recursive: true });
    fs.writeFileSync(
      `/etc/netns/${NS[i]}/hosts`,
      `127.0.0.1 localhost\n${IPS[0]} ${NODES[0]}\n${IPS[1]} ${NODES[1]}\n`,
    );
  }
}

/** The smallest slurm.conf for two nodes: no munge (auth/none), no cgroups, no accounting. */
function writeSlurmConf(dir: string): string {
  for (const d of ['state', 'spool']) fs.mkdirSync(path.join(dir, d));
  const conf = path.join(dir, 'slurm.conf');
  fs.writeFileSync(
    conf,
    [
      `ClusterName=hs${suffix}`,
      `SlurmctldHost=${NODES[0]}(${IPS[0]})`,
      'AuthType=auth/none',
      'CredType=cred/none',
      'SlurmUser=root',
      'SlurmdUser=root',
      'SlurmctldPort=6817',
      'SlurmdPort=6818',
      `StateSaveLocation=${dir}/state`,
      `SlurmdSpoolDir=${dir}/spool/%n`,
      `SlurmctldPidFile=${dir}/slurmctld.pid`,
      `SlurmdPidFile=${dir}/slurmd-%n.pid`,
      `SlurmctldLogFile=${dir}/slurmctld.log`,
      `SlurmdLogFile=${dir}/slurmd-%n.log`,
      'ProctrackType=proctrack/pgid',
      'TaskPlugin=task/none',
      'SelectType=select/linear',
      'MpiDefault=none',
      'SwitchType=switch/none',
      'JobAcctGatherType=jobacct_gather/none',
      'AccountingStorageType=accounting_storage/none',
      'ReturnToService=2',
      'MailProg=/bin/true',
      `NodeName=${NODELIST} NodeAddr=10.232.9.[1-2] CPUs=1 State=UNKNOWN`,
      'PartitionName=p Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
      '',
    ].join('\n'),
  );
  // slurmd always loads a cgroup plugin; name it, since autodetection fails on a tmpfs /sys/fs/cgroup
  fs.writeFileSync(path.join(dir, 'cgroup.conf'), 'CgroupPlugin=cgroup/v1\n');
  return conf;
}

/** A daemon in the foreground (-D), in node i's network namespace under that node's host name. */
function startDaemon(i: number, program: string, conf: string, logFile: string): void {
  const out = fs.openSync(logFile, 'a');
  const d = spawn(
    'ip',
    ['netns', 'exec', NS[i], 'unshare', '--uts', 'sh', '-c', `hostname ${NODES[i]} && exec ${program} -D -f ${conf}`],
    {
      stdio: ['ignore', out, out],
      env: { ...process.env, SLURM_CONF: conf },
    },
  );
  fs.closeSync(out);
  daemons.push(d);
}

function runIn(
  ns: string,
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<{ code: number | null; out: string }> {
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    }),
  );
}

test('Slurm: srun starts one launcher per node; two trainers on two slurmd nodes train together; so does an sbatch script', {
  timeout: 300_000,
}, async (t) => {
  const why = whyNot();
  if (why !== undefined) {
    t.skip(why);
    return;
  }
  process.once('exit', tearDown); // the daemons must not outlive a crashed or cancelled test
  try {
    setUpNetwork();
    const dir = tempDir('slurm');
    fs.chmodSync(dir, 0o755);
    const conf = writeSlurmConf(dir);
    const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
    for (const v of Object.keys(env)) if (v.startsWith('SLURM_') && v !== 'SLURM_CONF') delete env[v];

    // the host-list forms, against Slurm's own expansion
    for (const [list, hosts] of SLURM_HOSTLISTS) {
      const r = spawnSync('scontrol', ['show', 'hostnames', list], { encoding: 'utf8', env, timeout: 10_000 });
      assert.deepEqual(
        r.stdout.split(/\s+/).filter((h) => h !== ''),
        hosts,
        `scontrol show hostnames ${list}: ${r.stderr}`,
      );
    }
    for (const list of BAD_SLURM_HOSTLISTS) {
      const r = spawnSync('scontrol', ['show', 'hostnames', list], { encoding: 'utf8', env, timeout: 10_000 });
      assert.match(`${r.stdout}${r.stderr}`, /Invalid hostlist/, `scontrol show hostnames ${list}`);
    }

    startDaemon(0, 'slurmctld', conf, path.join(dir, 'slurmctld.out'));
    startDaemon(0, 'slurmd', conf, path.join(dir, 'slurmd0.out'));
    startDaemon(1, 'slurmd', conf, path.join(dir, 'slurmd1.out'));
    const daemonLogs = (): string =>
      [
        'slurmctld.log',
        `slurmd-${NODES[0]}.log`,
        `slurmd-${NODES[1]}.log`,
        'slurmctld.out',
        'slurmd0.out',
        'slurmd1.out',
      ]
        .map((f) => path.join(dir, f))
        .filter((f) => fs.existsSync(f))
        .map((f) => `---- ${f}\n${fs.readFileSync(f, 'utf8').split('\n').slice(-15).join('\n')}`)
        .join('\n');
    let sinfo = '';
    await waitFor(
      () => {
        const r = spawnSync('ip', ['netns', 'exec', NS[0], 'sinfo', '-h', '-N', '-o', '%N %T'], {
          encoding: 'utf8',
          env,
          timeout: 10_000,
        });
        sinfo = `${r.stdout}${r.stderr}`;
        return NODES.every((n) => new RegExp(`^${n} idle`, 'm').test(sinfo));
      },
      'both slurmd nodes to be idle',
      60_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; sinfo says:\n${sinfo}\n${daemonLogs()}`);
    });

    const { list, images } = await writeTestImages(dir, 8);
    const secretFile = path.join(dir, 'secret.json');
    fs.writeFileSync(secretFile, JSON.stringify(makeJobSecret(`slurm-test-${suffix}`)), { mode: 0o600 });
    const logDir = path.join(dir, 'log');
    const out = path.join(dir, 'out');
    const overrides = [
      `TRAIN.file_list=${list}`,
      `TRAIN.data_dir=${images}`,
      'validate=False',
      'total_images=8',
      'TRAIN.batch_size=8',
      'epochs=1',
      `model_save_dir=${out}`,
      'backend=wasm',
      'print_interval=1',
      'collective_timeout_s=60',
    ].flatMap((o) => ['-o', o]);
    const r = await runIn(
      NS[0],
      'srun',
      [
        '--nodes=2',
        '--ntasks-per-node=1',
        '--time=5',
        `--chdir=${dir}`,
        process.execPath,
        CLI,
        '--nproc_per_node',
        '1',
        '--secret_file',
        secretFile,
        '--log_dir',
        logDir,
        'train',
        ...overrides,
      ],
      env,
      240_000,
    );
    const logs = [0, 1].map((n) => path.join(logDir, `node${n}`, 'workerlog.0'));
    const tails = logs
      .map((f) => (fs.existsSync(f) ? `---- ${f}\n${fs.readFileSync(f, 'utf8').slice(-1500)}` : `(no ${f})`))
      .join('\n');
    assert.equal(r.code, 0, `srun:\n${r.out}\n${tails}\n${daemonLogs()}`);
    // each launcher found its node from Slurm: node rank, the expanded node list, global ranks 0 and 1
    assert.match(r.out, new RegExp(`node 0 of 2 \\(${NODES[0]},${NODES[1]}\\), 1 worker\\(s\\) here, world size 2`));
    assert.match(r.out, new RegExp(`node 1 of 2 \\(${NODES[0]},${NODES[1]}\\)`));
    const endpoints = fs.readFileSync(path.join(logDir, 'node1', 'endpoints.log'), 'utf8');
    assert.match(endpoints, new RegExp(`rank 1: tcp://${NODES[1]}:6170`));
    assert.match(endpoints, new RegExp(`rank 0: tcp://${NODES[0]}:6170`));
    // both trainers ran the step (4 images each of the global batch of 8) and rank 0 saved the checkpoint
    for (const f of logs) assert.match(fs.readFileSync(f, 'utf8'), /epoch:0 {2}, train step:0 {3}, top1: /, f);
    assert.doesNotMatch(fs.readFileSync(logs[0], 'utf8'), /collectives: a single worker/);
    assert.ok(fs.existsSync(path.join(out, 'HarDNet39ds', '0', 'weights.json')), 'rank 0 saved the epoch checkpoint');

    // the same from an sbatch script: the batch step itself refuses to start a 2-node job alone, srun in it starts it
    const batchLog = path.join(dir, 'log-batch');
    const batchOut = path.join(dir, 'out-batch');
    fs.mkdirSync(batchOut);
    const script = path.join(dir, 'job.sh');
    fs.writeFileSync(
      script,
      [
        '#!/bin/sh',
        '#SBATCH --nodes=2',
        '#SBATCH --ntasks-per-node=1',
        `${process.execPath} ${CLI} --log_dir ${path.join(dir, 'log-nosrun')} run -- true; echo "without srun: exit $?"`,
        `srun --nodes=2 --ntasks-per-node=1 ${process.execPath} ${CLI} --nproc_per_node 1 --secret_file ${secretFile} --log_dir ${batchLog} ` +
          `run -- ${process.execPath} ${COLLECTIVE_WORKER} --out ${batchOut} --steps 3 --timeout-ms 20000`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const b = await runIn(
      NS[0],
      'sbatch',
      ['--wait', '--time=5', `--chdir=${dir}`, `--output=${path.join(dir, 'batch.out')}`, script],
      env,
      120_000,
    );
    const batchOutput = fs.existsSync(path.join(dir, 'batch.out'))
      ? fs.readFileSync(path.join(dir, 'batch.out'), 'utf8')
      : '(no batch.out)';
    assert.equal(b.code, 0, `sbatch --wait:\n${b.out}\n${batchOutput}\n${daemonLogs()}`);
    assert.match(
      batchOutput,
      /launch: SLURM_JOB_NODELIST=\S+ has 2 nodes, but this launcher is not in an srun step[^\n]*\nwithout srun: exit 2/,
    );
    assert.match(batchOutput, /rank 0 of 2: all-reduced sum 1/);
    assert.match(
      fs.readFileSync(path.join(batchLog, 'node1', 'workerlog.0'), 'utf8'),
      /rank 1 of 2: all-reduced sum 1/,
    );
  } finally {
    tearDown();
    process.off('exit', tearDown);
  }
});
