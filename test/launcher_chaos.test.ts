/**
 * The chaos suite: real launcher, real shims, real worker processes and sockets; failures are real exits and
 * real signals. Each case checks the exit code, the root-cause block, and that no process of the job survives.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isAlive, jobProcesses } from '../launcher/proc.js';
import {
  COLLECTIVE_WORKER,
  TEST_WORKER,
  jobIdOf,
  launch,
  records,
  startLaunch,
  tempDir,
  waitFor,
} from './helpers/launcher_spawn.js';

function worker(out: string, ...behaviour: string[]): string[] {
  return ['run', '--', process.execPath, TEST_WORKER, '--out', out, ...behaviour];
}

/**
 * Waits until no process carries the job id and every pid the test knows of is gone. Both are needed: a process
 * that is being torn down (kernel exit_mm, slow for a big Node heap on a loaded machine) already shows an empty
 * /proc/<pid>/environ, so the job-id scan misses it while the process is not yet a zombie.
 */
/**
 * How long a test waits for the job's processes to be gone. Generous on purpose: an orphan never goes, so any
 * bound catches one, while a loaded 2-core machine can take seconds to tear down a few Node processes.
 */
const TEARDOWN_MS = 15_000;

async function assertNoJobProcesses(jobId: string, withinMs = TEARDOWN_MS, knownPids: number[] = []): Promise<void> {
  const left = (): unknown[] => [...jobProcesses(jobId), ...knownPids.filter(isAlive)];
  await waitFor(
    () => left().length === 0,
    `every process of job ${jobId} to exit (left: ${JSON.stringify(left())})`,
    withinMs,
  );
}

test('a worker that exits 3: the launcher stops the others, names it in one root-cause block and exits 3', async () => {
  const dir = tempDir('launch-exit3');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const r = await launch([
    '--nproc_per_node',
    '3',
    '--grace',
    '2',
    '--log_dir',
    path.join(dir, 'log'),
    ...worker(out, '--exit-rank', '1', '--exit-code', '3', '--exit-after', '300'),
  ]);
  assert.equal(r.code, 3, r.stderr);
  const recs = records(out, 3)!;
  assert.equal(r.stderr.match(/root cause/g)?.length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`first failure: rank 1 \\(local rank 1\\) of 3, pid ${recs[1].pid}`));
  assert.match(r.stderr, /how it ended:\s+exit code 3/);
  assert.match(r.stderr, new RegExp(`log:\\s+${path.join(dir, 'log', 'workerlog.1')}`));
  assert.match(r.stderr, /rank 1 fails now with exit code 3/, 'the last lines of its log are in the block');
  assert.match(r.stderr, /ran for:\s+\d+\.\d s/);
  for (const rec of recs) assert.equal(isAlive(rec.pid), false);
  await assertNoJobProcesses(
    recs[0].env.HARDNET_JOB_ID,
    TEARDOWN_MS,
    recs.map((rec) => rec.pid),
  );
  // the rank-0 stream and the other ranks' stderr reach the terminal, the latter prefixed
  assert.match(r.stdout, /rank 0 started/);
  assert.doesNotMatch(r.stdout, /rank 2 started/);
  assert.match(r.stderr, /\[rank 2\] rank 2 says this on stderr/);
  assert.match(fs.readFileSync(path.join(dir, 'log', 'workerlog.2'), 'utf8'), /rank 2 started/);
});

test('a SIGKILLed worker: the launcher exits 137 and names the signal and the pid', async () => {
  const dir = tempDir('launch-kill9');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const run = startLaunch([
    '--nproc_per_node',
    '2',
    '--grace',
    '2',
    '--log_dir',
    path.join(dir, 'log'),
    ...worker(out),
  ]);
  const recs = await waitFor(() => records(out, 2), 'both workers to start');
  process.kill(recs[1].pid, 'SIGKILL');
  const r = await run.done;
  assert.equal(r.code, 137, r.stderr);
  assert.match(r.stderr, new RegExp(`first failure: rank 1 \\(local rank 1\\) of 2, pid ${recs[1].pid}`));
  assert.match(r.stderr, /killed by signal SIGKILL \(9\)/);
  assert.doesNotMatch(r.stderr, /OOM/, 'a kill -9 by hand is not the OOM killer');
  await assertNoJobProcesses(
    recs[0].env.HARDNET_JOB_ID,
    TEARDOWN_MS,
    recs.map((rec) => rec.pid),
  );
});

test('a SIGKILLed launcher leaves no process of the job, grandchildren that ignore SIGTERM included', async () => {
  const dir = tempDir('launch-orphans');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const run = startLaunch([
    '--nproc_per_node',
    '2',
    '--log_dir',
    path.join(dir, 'log'),
    ...worker(out, '--grandchild', '--on-sigint', 'ignore'),
  ]);
  const recs = await waitFor(() => records(out, 2), 'both workers to start');
  const jobId = recs[0].env.HARDNET_JOB_ID;
  const pids = recs.flatMap((r) => [r.pid, r.grandchildPid!]);
  assert.ok(pids.every(isAlive));
  assert.ok(jobProcesses(jobId).length >= 6, 'shims, workers and grandchildren are found by their job id');
  // the shims SIGTERM their groups when the launcher's socket closes and SIGKILL them 2 s later
  run.child.kill('SIGKILL');
  await assertNoJobProcesses(jobId, TEARDOWN_MS, pids);
});

test('Ctrl-C once asks the workers to stop cleanly; the launcher exits 130', async () => {
  const dir = tempDir('launch-ctrlc1');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const run = startLaunch([
    '--nproc_per_node',
    '2',
    '--log_dir',
    path.join(dir, 'log'),
    ...worker(out, '--on-sigint', 'clean'),
  ]);
  const recs = await waitFor(() => records(out, 2), 'both workers to start');
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT received \(1\): sending SIGINT to every worker to stop cleanly/);
  assert.doesNotMatch(r.stderr, /root cause/);
  for (const local of [0, 1])
    assert.match(
      fs.readFileSync(path.join(dir, 'log', `workerlog.${local}`), 'utf8'),
      new RegExp(`rank ${local} stopping cleanly`),
    );
  await assertNoJobProcesses(
    recs[0].env.HARDNET_JOB_ID,
    TEARDOWN_MS,
    recs.map((rec) => rec.pid),
  );
});

test('Ctrl-C three times: SIGINT, then SIGTERM, then SIGKILL reach workers that ignore the first two', async () => {
  const dir = tempDir('launch-ctrlc3');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const run = startLaunch([
    '--nproc_per_node',
    '2',
    '--log_dir',
    path.join(dir, 'log'),
    ...worker(out, '--on-sigint', 'ignore'),
  ]);
  const recs = await waitFor(() => records(out, 2), 'both workers to start');
  const log0 = path.join(dir, 'log', 'workerlog.0');
  run.child.kill('SIGINT');
  await waitFor(() => fs.readFileSync(log0, 'utf8').includes('ignores SIGINT'), 'rank 0 to see SIGINT');
  run.child.kill('SIGINT');
  await waitFor(() => fs.readFileSync(log0, 'utf8').includes('ignores SIGTERM'), 'rank 0 to see SIGTERM');
  assert.ok(
    recs.every((rec) => isAlive(rec.pid)),
    'workers that ignore SIGINT and SIGTERM are still running',
  );
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT received \(3\): sending SIGKILL/);
  assert.match(r.stderr, /rank 0 killed by signal SIGKILL/);
  await assertNoJobProcesses(
    recs[0].env.HARDNET_JOB_ID,
    TEARDOWN_MS,
    recs.map((rec) => rec.pid),
  );
});

test('SIGTERM to the launcher acts like the first Ctrl-C', async () => {
  const dir = tempDir('launch-term');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const run = startLaunch(['--log_dir', path.join(dir, 'log'), ...worker(out, '--on-sigint', 'clean')]);
  await waitFor(() => records(out, 1), 'the worker to start');
  run.child.kill('SIGTERM');
  const r = await run.done;
  assert.equal(r.code, 143, r.stderr);
  assert.match(fs.readFileSync(path.join(dir, 'log', 'workerlog.0'), 'utf8'), /rank 0 stopping cleanly/);
});

test('two jobs at once on one machine: separate endpoints, each rank 0 hears only its own job', async () => {
  const dirs = [tempDir('launch-jobA'), tempDir('launch-jobB')];
  for (const d of dirs) fs.mkdirSync(path.join(d, 'out'));
  const results = await Promise.all(
    dirs.map((d) =>
      launch([
        '--nproc_per_node',
        '2',
        '--log_dir',
        path.join(d, 'log'),
        ...worker(path.join(d, 'out'), '--exchange', '--done-after', '100'),
      ]),
    ),
  );
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const [a, b] = dirs.map((d) => records(path.join(d, 'out'), 2)!);
  assert.notEqual(a[0].env.HARDNET_JOB_ID, b[0].env.HARDNET_JOB_ID);
  assert.notEqual(a[0].env.MASTER_PORT, b[0].env.MASTER_PORT);
  const endpointsA = a[0].env.PADDLE_TRAINER_ENDPOINTS.split(',');
  for (const e of b[0].env.PADDLE_TRAINER_ENDPOINTS.split(',')) assert.ok(!endpointsA.includes(e));
  for (const r of results) assert.match(r.stdout, /rank 0 received its own job's message/);
});

test('--max_restarts 1: a failed attempt restarts every worker with the restart counter, then succeeds', async () => {
  const dir = tempDir('launch-restart');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const r = await launch([
    '--nproc_per_node',
    '2',
    '--max_restarts',
    '1',
    '--grace',
    '1',
    '--log_dir',
    path.join(dir, 'log'),
    ...worker(out, '--exit-rank', '1', '--fail-on-restart', '0', '--exit-code', '4', '--done-after', '300'),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /root cause/);
  assert.match(r.stderr, /attempt:\s+1 of 2/);
  const again = records(out, 2, 1)!;
  assert.deepEqual(
    again.map((x) => [x.env.HARDNET_RESTART_COUNT, x.env.TORCHELASTIC_RESTART_COUNT]),
    [
      ['1', '1'],
      ['1', '1'],
    ],
  );
  const launchLog = fs.readFileSync(path.join(dir, 'log', 'launch.log'), 'utf8');
  assert.match(launchLog, /attempt 2: restart 1 of 1/);
  const log1 = fs.readFileSync(path.join(dir, 'log', 'workerlog.1'), 'utf8');
  assert.ok(log1.indexOf('attempt 1') < log1.indexOf('FAILED FIRST: exit code 4'));
  assert.ok(log1.indexOf('FAILED FIRST') < log1.indexOf('attempt 2: restart 1 of 1'));
});

test('no restarts left: the failure code is the exit code after K restarts', async () => {
  const dir = tempDir('launch-restart-out');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const r = await launch([
    '--max_restarts',
    '1',
    '--log_dir',
    path.join(dir, 'log'),
    ...worker(out, '--exit-rank', '0', '--exit-code', '6'),
  ]);
  assert.equal(r.code, 6, r.stderr);
  assert.equal(r.stderr.match(/root cause/g)?.length, 2);
  assert.match(r.stderr, /no restarts left \(--max_restarts 1\)/);
});

test("an earlier run's logs are moved aside, never appended into; a running job's log_dir is refused", async () => {
  const dir = tempDir('launch-logs');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const logDir = path.join(dir, 'log');
  assert.equal((await launch(['--log_dir', logDir, 'run', '--', 'sh', '-c', 'echo first run'])).code, 0);
  const running = startLaunch(['--log_dir', logDir, ...worker(out)]);
  await waitFor(() => records(out, 1), 'the second run to start');
  assert.equal(fs.readFileSync(path.join(logDir, 'workerlog.0'), 'utf8').includes('first run'), false);
  const [previous] = fs.readdirSync(path.join(logDir, 'previous'));
  assert.match(fs.readFileSync(path.join(logDir, 'previous', previous, 'workerlog.0'), 'utf8'), /first run/);
  assert.ok(fs.existsSync(path.join(logDir, 'previous', previous, 'launch.log')));
  const refused = await launch(['--log_dir', logDir, 'run', '--', 'true']);
  assert.equal(refused.code, 2);
  assert.match(
    refused.stderr,
    new RegExp(`--log_dir ${logDir} is in use by the launcher with pid ${running.child.pid}`),
  );
  running.child.kill('SIGINT');
  await running.done;
  assert.ok(jobIdOf(running.stderr));
});

test('a program that cannot be started fails with 127 and says why', async () => {
  const dir = tempDir('launch-enoent');
  const r = await launch(['--log_dir', path.join(dir, 'log'), 'run', '--', '/nonexistent/program']);
  assert.equal(r.code, 127, r.stderr);
  assert.match(r.stderr, /could not start: \/nonexistent\/program: spawn \/nonexistent\/program ENOENT/);
});

test('a stopped worker (SIGSTOP) fails the job with the collective timeout naming it, instead of a hang', async () => {
  const dir = tempDir('launch-sigstop');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const run = startLaunch([
    '--nproc_per_node',
    '3',
    '--grace',
    '1',
    '--log_dir',
    path.join(dir, 'log'),
    'run',
    '--',
    process.execPath,
    COLLECTIVE_WORKER,
    '--out',
    out,
    '--timeout-ms',
    '2000',
  ]);
  const recs = await waitFor(() => records(out, 3), 'the three ranks to form their process group', 30_000);
  process.kill(recs[2].pid, 'SIGSTOP');
  const stoppedAt = Date.now();
  const r = await run.done;
  // a hang never ends; a 2 s collective timeout ends the job within seconds, 60 s leaves room for a loaded machine
  assert.ok(Date.now() - stoppedAt < 60_000, 'the job ends by the collective timeout instead of hanging');
  assert.equal(r.code, 1, r.stderr);
  const block = r.stderr.slice(r.stderr.indexOf('root cause'));
  assert.match(block, /first failure: rank [01] /, 'a waiting rank fails first, the stopped one cannot');
  assert.match(block, /rank 2 (sent nothing|stopped sending|disconnected)/, 'its error names the stopped rank');
  await assertNoJobProcesses(
    recs[0].env.HARDNET_JOB_ID,
    TEARDOWN_MS,
    recs.map((rec) => rec.pid),
  );
});
