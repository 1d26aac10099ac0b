/**
 * The job's directories (/tmp/hardnet-<job>-<random> for the ipc sockets, /dev/shm/hardnet-<job>-<random> for
 * shared memory): created by this launch (mkdir, then lstat: owner and mode), never a directory someone else made
 * first; cleanup never throws. A squatted name is a clear error, never a crash after a successful job.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { runJob } from '../launcher/agent.js';
import { closeLogger, createLaunchLogger, openLogDir } from '../launcher/logs.js';
import { buildPlan } from '../launcher/plan.js';
import { ipcJobDir } from '../shared/env.js';
import { prepareIpcDir } from '../worker/collectives/endpoint.js';
import { shmUnavailable } from '../worker/sys/shm.js';
import { CLI, COLLECTIVE_WORKER, launch, runCollect, tempDir } from './helpers/launcher_spawn.js';

const NOBODY = 65534;

/** The launcher as another user than the squatter: as root here, the launcher runs as nobody; otherwise the squatter's directories are ones this user cannot empty. */
function launchAs(uid: number | undefined, args: string[]) {
  return runCollect(process.execPath, [CLI, ...args], uid === undefined ? {} : { uid, gid: uid });
}

test('another user squatting /tmp/hardnet-<job> and /dev/shm/hardnet-<job> cannot crash a successful job', async () => {
  const jobId = `squat-${randomBytes(4).toString('hex')}`;
  const root = process.getuid!() === 0;
  const squatted = [ipcJobDir(jobId, os.tmpdir()), `/dev/shm/hardnet-${jobId}`];
  for (const d of squatted) {
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'planted'), 'x');
    // root squats and the launcher runs as nobody; otherwise a directory the launcher's user cannot empty
    fs.chmodSync(d, root ? 0o777 : 0o555);
  }
  const dir = tempDir('squat');
  fs.chmodSync(dir, 0o777);
  try {
    const r = await launchAs(root ? NOBODY : undefined, [
      '--job_id',
      jobId,
      '--nproc_per_node',
      '2',
      '--log_dir',
      path.join(dir, 'log'),
      'run',
      '--',
      process.execPath,
      '-e',
      '',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /EPERM|EACCES|Error:/);
    for (const d of squatted) assert.ok(fs.existsSync(path.join(d, 'planted')), `the squatter's ${d} is left alone`);
    // nothing of this job is left behind under a name of its own
    const mine = (root: string) => fs.readdirSync(root).filter((n) => n.startsWith(`hardnet-${jobId}-`));
    assert.deepEqual([...mine(os.tmpdir()), ...mine('/dev/shm')], []);
  } finally {
    for (const d of squatted) {
      fs.chmodSync(d, 0o755);
      fs.rmSync(d, { recursive: true, force: true });
    }
  }
});

async function runPlanned(plan: ReturnType<typeof buildPlan>, logDir: string): Promise<number> {
  const logs = openLogDir(logDir);
  const logger = createLaunchLogger(logDir);
  try {
    return await runJob({
      plan,
      program: process.execPath,
      args: () => ['-e', ''],
      maxRestarts: 0,
      graceMs: 1000,
      logs,
      logger,
    });
  } finally {
    await closeLogger(logger);
    logs.release();
  }
}

test('a job directory that exists before the launch (wrong mode, or a symlink) is a clear error, and is left alone', async () => {
  const dir = tempDir('dirs');
  const planOf = (jobId: string) =>
    buildPlan({
      devices: { gpus: null, nproc: 2 },
      nodes: { hosts: ['127.0.0.1'], nodeRank: 0, source: 'single' },
      jobId,
      basePort: 1,
      logDir: path.join(dir, 'log'),
    });
  const a = planOf('x1');
  const b = planOf('x1');
  assert.notEqual(a.ipcDir, b.ipcDir, 'the directory name has a random part');
  assert.match(path.basename(a.ipcDir!), /^hardnet-x1-[0-9a-f]{8,}$/);

  const wrongMode = planOf(`wm-${process.pid}`);
  fs.mkdirSync(wrongMode.ipcDir!, { mode: 0o777 });
  fs.chmodSync(wrongMode.ipcDir!, 0o777);
  await assert.rejects(
    runPlanned(wrongMode, path.join(dir, 'log')),
    (e: Error) => e.message.includes(wrongMode.ipcDir!) && /already exists/.test(e.message),
  );
  assert.equal(fs.statSync(wrongMode.ipcDir!).mode & 0o777, 0o777, 'left as it was');
  fs.rmdirSync(wrongMode.ipcDir!);

  const target = tempDir('dirs-target');
  const link = planOf(`ln-${process.pid}`);
  fs.symlinkSync(target, link.ipcDir!);
  await assert.rejects(
    runPlanned(link, path.join(dir, 'log2')),
    (e: Error) => e.message.includes(link.ipcDir!) && /already exists.*symlink/.test(e.message),
  );
  assert.ok(fs.lstatSync(link.ipcDir!).isSymbolicLink());
  assert.deepEqual(fs.readdirSync(target), []);
  fs.rmSync(link.ipcDir!);
});

test('a worker accepts a job directory only if it is a real directory of this user with mode 0700', () => {
  const base = tempDir('ipc');
  const sock = (d: string) => path.join(base, d, 'rank0.sock');
  // fresh: created 0700
  prepareIpcDir(sock('fresh'));
  assert.equal(fs.statSync(path.join(base, 'fresh')).mode & 0o777, 0o700);
  // made by another rank of the job (or the launcher): accepted as it is
  prepareIpcDir(sock('fresh'));
  fs.mkdirSync(path.join(base, 'loose'), { mode: 0o777 });
  fs.chmodSync(path.join(base, 'loose'), 0o777);
  assert.throws(
    () => prepareIpcDir(sock('loose')),
    (e: Error) => e.message.includes(path.join(base, 'loose')) && /mode 0?777/.test(e.message),
  );
  assert.equal(
    fs.statSync(path.join(base, 'loose')).mode & 0o777,
    0o777,
    'not tightened: others may already have put files in it',
  );
  fs.symlinkSync(tempDir('ipc-target'), path.join(base, 'link'));
  assert.throws(() => prepareIpcDir(sock('link')), /symlink/);

  const jobId = `shmsq-${process.pid}`;
  const shm = `/dev/shm/hardnet-${jobId}`;
  fs.mkdirSync(shm, { mode: 0o777 });
  fs.chmodSync(shm, 0o777);
  try {
    assert.match(shmUnavailable(jobId) ?? '', /mode 0?777/);
    assert.equal(fs.statSync(shm).mode & 0o777, 0o777);
  } finally {
    fs.rmdirSync(shm);
  }
});

test('a real 2-worker job: its directories are fresh, private and gone afterwards', async () => {
  const dir = tempDir('dirs-job');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const jobId = `dj-${randomBytes(3).toString('hex')}`;
  const r = await launch([
    '--job_id',
    jobId,
    '--nproc_per_node',
    '2',
    '--log_dir',
    path.join(dir, 'log'),
    'run',
    '--',
    process.execPath,
    COLLECTIVE_WORKER,
    '--out',
    out,
    '--steps',
    '5',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const endpoints = fs.readFileSync(path.join(dir, 'log', 'endpoints.log'), 'utf8');
  assert.match(endpoints, new RegExp(`hardnet-${jobId}-[0-9a-f]{8,}/rank1\\.sock`));
  const left = (root: string) => fs.readdirSync(root).filter((n) => n.startsWith(`hardnet-${jobId}`));
  assert.deepEqual([...left(os.tmpdir()), ...left('/dev/shm')], []);
});
