/**
 * The agent loop (torchrun's elastic agent, without elasticity): start all local workers, wait for the first
 * failure or for all to finish, stop the rest, report the root cause, restart up to --max_restarts times, and
 * turn signals sent to the launcher into a clean stop or an escalation.
 */
import * as fs from 'node:fs';
import type winston from 'winston';
import { exitCodeOf, formatRootCause, oomEvidence, readOomKillCount, describeEnd, type WorkerExit } from './failure.js';
import { WorkerOutput, tailLines, writeEndpointsLog, type LogDir } from './logs.js';
import { workerProcessEnv, type Plan } from './plan.js';
import { ENV } from '../shared/env.js';
import { createFreshPrivateDir, createPrivateDir, removePrivateDir } from './jobdirs.js';
import { Attempt } from './supervise.js';
import { UsageError } from '../shared/errors.js';
import * as os from 'node:os';

export interface JobOptions {
  plan: Plan;
  program: string;
  /** the worker's arguments for an attempt (a restart may add --resume) */
  args: (restartCount: number) => string[];
  maxRestarts: number;
  graceMs: number;
  logs: LogDir;
  logger: winston.Logger;
  /** the job secret as one JSON line, or undefined where there is none */
  secretLine?: string;
  env?: NodeJS.ProcessEnv;
  /** told every state the workers go through (for tests and tools that watch the job) */
  onState?: (state: WorkerState) => void;
}

/** The fd on which every worker reads the secret (see HARDNET_SECRET_FD in shared/env.ts). */
const SECRET_FD = 3;
const TAIL_LINES = 40;
/** what a worker exits with on a usage or config error (shared/errors.ts) */
const USAGE_EXIT_CODE = new UsageError('').exitCode;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * The state of this node's workers as a whole, as torchrun's WorkerState: INIT while an attempt starts, HEALTHY
 * while it runs, then one of the three ends.
 */
export type WorkerState = 'INIT' | 'HEALTHY' | 'SUCCEEDED' | 'FAILED' | 'STOPPED';

/** How a job ended, as torchrun's RunResult; `exitCode` is what the launcher exits with. */
export type RunResult =
  | { state: 'SUCCEEDED'; exitCode: 0; restarts: number }
  /** the first worker to fail in the last attempt, after `restarts` restarts */
  | { state: 'FAILED'; exitCode: number; restarts: number; failure: WorkerExit }
  /** stopped by a signal to the launcher (Ctrl-C, SIGTERM, SIGHUP) */
  | { state: 'STOPPED'; exitCode: number; restarts: number; signal: NodeJS.Signals };

/** How one attempt ended. */
type AttemptEnd =
  | { state: 'SUCCEEDED' }
  | { state: 'STOPPED'; signal: NodeJS.Signals }
  | { state: 'FAILED'; first: WorkerExit };

/** Run the job to its end; resolves with the launcher's exit code. */
export async function runJob(o: JobOptions): Promise<number> {
  return (await runAgent(o)).exitCode;
}

export async function runAgent(o: JobOptions): Promise<RunResult> {
  const { plan, logger } = o;
  const env: NodeJS.ProcessEnv = { ...(o.env ?? process.env) };
  // The job's directories, made by this launch before their names are written anywhere (endpoints.log is
  // world-readable); removed at the end, and only they (a squatter's directory under a guessable name is not ours).
  const created: string[] = [];
  const removeCreated = () => {
    for (const d of created.splice(0)) removePrivateDir(d, (m) => logger.warn(m));
  };
  delete env[ENV.HARDNET_SHM_DIR]; // a launch inside a launch gets its own
  try {
    if (plan.ipcDir) {
      createPrivateDir(plan.ipcDir);
      created.push(plan.ipcDir);
    }
    if (plan.nprocPerNode > 1) {
      const shm = sharedMemoryDir(plan.jobId, (m) => logger.warn(m));
      if (shm !== undefined) {
        created.push(shm);
        env[ENV.HARDNET_SHM_DIR] = shm;
      }
    }
  } catch (e) {
    removeCreated();
    throw e;
  }
  writeEndpointsLog(o.logs.dir, plan.jobId, plan.endpoints);
  const outputs = plan.workers.map((w) => new WorkerOutput(o.logs.workerLogPath(w.localRank), w.rank));
  const outputOf = (rank: number) => outputs[plan.workers.findIndex((w) => w.rank === rank)];
  logger.info(
    `job ${plan.jobId}: node ${plan.nodeRank} of ${plan.hosts.length} (${plan.hosts.join(',')}), ` +
      `${plan.nprocPerNode} worker(s) here, world size ${plan.worldSize}, ` +
      (plan.endpoints.length === 0 ? 'a single worker without sockets' : `endpoints in ${o.logs.dir}/endpoints.log`),
  );
  if (o.logs.movedAsideTo) logger.info(`the earlier run's logs were moved to ${o.logs.movedAsideTo}`);

  const enter = (state: WorkerState) => o.onState?.(state);
  let attempt: Attempt | undefined;
  let stopSignal: NodeJS.Signals | undefined;
  let stopRequests = 0;
  // Ctrl-C once: ask the workers to stop cleanly (they get SIGINT); twice: SIGTERM; three times: SIGKILL.
  // SIGTERM and SIGHUP to the launcher count like a Ctrl-C.
  const onSignal = (sig: NodeJS.Signals) => {
    stopRequests++;
    stopSignal ??= sig;
    const forward: NodeJS.Signals = stopRequests === 1 ? 'SIGINT' : stopRequests === 2 ? 'SIGTERM' : 'SIGKILL';
    logger.warn(
      `${sig} received (${stopRequests}): sending ${forward} to every worker` +
        (stopRequests === 1 ? ' to stop cleanly; signal again to SIGTERM, a third time to SIGKILL' : ''),
    );
    attempt?.signalAll(forward);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);

  /** Start every local worker (INIT), watch them (HEALTHY), and say how the attempt ended. */
  const runAttempt = async (restart: number): Promise<AttemptEnd> => {
    enter('INIT');
    const note = restart === 0 ? 'attempt 1' : `attempt ${restart + 1}: restart ${restart} of ${o.maxRestarts}`;
    for (const out of outputs) out.mark(`${note}, ${new Date().toISOString()}`);
    if (restart > 0) logger.warn(`restarting all workers (${note}, HARDNET_RESTART_COUNT=${restart})`);
    const oomBefore = readOomKillCount();
    const args = o.args(restart);
    const current = new Attempt(
      plan.workers.map((slot, i) => ({
        rank: slot.rank,
        localRank: slot.localRank,
        program: o.program,
        args,
        env: workerProcessEnv(slot, env, restart, o.secretLine === undefined ? undefined : SECRET_FD),
        secretLine: o.secretLine,
        output: outputs[i],
      })),
    );
    attempt = current;
    const pids = await Promise.all(current.workers.map((w) => w.pid));
    logger.info(
      '\n' +
        table([
          ['rank', 'local_rank', 'device', 'pid', 'log'],
          ...plan.workers.map((w, i) => [
            String(w.rank),
            String(w.localRank),
            w.device,
            String(pids[i] ?? '-'),
            outputs[i].logPath,
          ]),
        ]),
    );
    enter('HEALTHY');
    if (stopRequests > 0) current.signalAll('SIGINT'); // a signal that arrived while the workers were starting

    const first = await current.firstFailure;
    if (stopSignal !== undefined) {
      const ends = await current.allExited;
      for (const e of ends) outputOf(e.rank).mark(`stopped: ${describeEnd(e)}`);
      logger.warn(`stopped on ${stopSignal}: ${ends.map((e) => `rank ${e.rank} ${describeEnd(e)}`).join(', ')}`);
      return { state: 'STOPPED', signal: stopSignal };
    }
    if (first === null) {
      for (const out of outputs) out.mark('exit code 0');
      logger.info(`all ${plan.workers.length} worker(s) exited 0`);
      return { state: 'SUCCEEDED' };
    }
    logger.error(
      `rank ${first.rank} (pid ${first.pid ?? '-'}) failed: ${describeEnd(first)}; stopping the other workers (SIGTERM, SIGKILL after ${o.graceMs / 1000} s)`,
    );
    const ends: WorkerExit[] = await current.terminate(o.graceMs);
    for (const e of ends) outputOf(e.rank).mark(`${e === first ? 'FAILED FIRST: ' : ''}${describeEnd(e)}`);
    logger.error(
      '\n' +
        formatRootCause({
          first,
          worldSize: plan.worldSize,
          oom: oomEvidence(first, oomBefore),
          tail: tailLines(first.logPath, TAIL_LINES),
          attempt: restart,
          maxRestarts: o.maxRestarts,
        }),
    );
    return { state: 'FAILED', first };
  };

  try {
    for (let restart = 0; ; restart++) {
      const end = await runAttempt(restart);
      enter(end.state);
      if (end.state === 'SUCCEEDED') return { state: end.state, exitCode: 0, restarts: restart };
      if (end.state === 'STOPPED') {
        return {
          state: end.state,
          exitCode: 128 + (os.constants.signals[end.signal] ?? 0),
          restarts: restart,
          signal: end.signal,
        };
      }
      // FAILED: restart while restarts are left and nobody asked the job to stop, unless the worker said that it
      // was started wrongly (exit 2: a usage or config error, which no restart mends)
      const usageError = end.first.code === USAGE_EXIT_CODE && end.first.signal === null;
      if (restart >= o.maxRestarts || stopSignal !== undefined || usageError) {
        if (usageError && restart < o.maxRestarts)
          logger.error(`rank ${end.first.rank} exited ${USAGE_EXIT_CODE}, a usage or config error: not restarted`);
        else if (o.maxRestarts > 0) logger.error(`no restarts left (--max_restarts ${o.maxRestarts})`);
        return { state: end.state, exitCode: exitCodeOf(end.first), restarts: restart, failure: end.first };
      }
    }
  } finally {
    for (const s of signals) process.off(s, onSignal);
    for (const out of outputs) out.close();
    // with them go the sockets and shared-memory files (ring payloads, decode caches) of workers killed before
    // they unlinked their names
    removeCreated();
  }
}

const SHM_ROOT = '/dev/shm';

/** The job's directory on /dev/shm for the workers of this node, or undefined where there is no usable /dev/shm. */
function sharedMemoryDir(jobId: string, warn: (m: string) => void): string | undefined {
  try {
    fs.accessSync(SHM_ROOT, fs.constants.W_OK);
  } catch {
    return undefined; // the workers say why they pass payloads through the sockets
  }
  try {
    return createFreshPrivateDir(SHM_ROOT, `hardnet-${jobId}`);
  } catch (e) {
    warn(`${(e as Error).message}; the workers will not use shared memory`);
    return undefined;
  }
}
