/**
 * What to do when a worker fails: find out how it ended (exit code, signal, OOM killer), print one root-cause
 * block, and compute the launcher's exit code.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface WorkerExit {
  rank: number;
  localRank: number;
  /** the worker's pid (the program's, not its shim's); undefined when it never started */
  pid?: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** the program could not be started (not found, not executable) */
  spawnError?: string;
  startedAt: number;
  endedAt: number;
  logPath: string;
}

export function failed(e: WorkerExit): boolean {
  return e.spawnError !== undefined || e.signal !== null || (e.code ?? 1) !== 0;
}

/** The shell convention: the code itself, or 128 + the signal's number. */
export function exitCodeOf(e: WorkerExit): number {
  if (e.spawnError !== undefined) return 127;
  if (e.signal) return 128 + (os.constants.signals[e.signal] ?? 0);
  return e.code ?? 1;
}

function readCounter(file: string, key: string): number | undefined {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(fs.readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How many processes the kernel's OOM killer has killed in this launcher's memory cgroup (v2 memory.events or
 * v1 memory.oom_control), or undefined where neither is readable. Workers stay in the launcher's cgroup, so a
 * rise across an attempt means one of them (or a child) was OOM-killed.
 */
export function readOomKillCount(cgroupFile = '/proc/self/cgroup', root = '/sys/fs/cgroup'): number | undefined {
  let lines: string[];
  try {
    lines = fs.readFileSync(cgroupFile, 'utf8').split('\n');
  } catch {
    return undefined;
  }
  for (const line of lines) {
    const [, controllers, cg] = line.split(':');
    if (cg === undefined) continue;
    const candidates =
      controllers === ''
        ? [
            path.join(root, cg, 'memory.events'),
            path.join(root, 'unified', cg, 'memory.events'),
            path.join(root, 'memory.events'),
          ]
        : controllers.split(',').includes('memory')
          ? [path.join(root, 'memory', cg, 'memory.oom_control'), path.join(root, 'memory', 'memory.oom_control')]
          : [];
    for (const file of candidates) {
      const n = readCounter(file, 'oom_kill');
      if (n !== undefined) return n;
    }
  }
  return undefined;
}

/** Does this kernel log text record the OOM killer killing `pid`? */
export function kernelLogNamesOomKill(kernelLog: string, pid: number): boolean {
  const re = new RegExp(
    `(Out of memory|Memory cgroup out of memory): Killed process ${pid}\\b|oom-kill:.*\\bpid=${pid}\\b`,
  );
  return re.test(kernelLog);
}

function readKernelLog(): string {
  try {
    return execFileSync('dmesg', [], {
      encoding: 'utf8',
      timeout: 3000,
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 64 << 20,
    });
  } catch {
    return '';
  }
}

/** Why a SIGKILLed worker died, when the kernel log or the cgroup's counter says it was the OOM killer. */
export function oomEvidence(e: WorkerExit, oomKillsBefore: number | undefined): string | undefined {
  if (e.signal !== 'SIGKILL') return undefined;
  if (e.pid !== undefined && kernelLogNamesOomKill(readKernelLog(), e.pid)) return 'the kernel log names this pid';
  const after = readOomKillCount();
  if (oomKillsBefore !== undefined && after !== undefined && after > oomKillsBefore)
    return `the memory cgroup's oom_kill count rose from ${oomKillsBefore} to ${after}`;
  return undefined;
}

function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h > 0 ? `${h} h ` : ''}${m} min ${Math.round(s % 60)} s`;
}

export function describeEnd(e: WorkerExit): string {
  if (e.spawnError !== undefined) return `could not start: ${e.spawnError}`;
  if (e.signal) return `killed by signal ${e.signal} (${os.constants.signals[e.signal] ?? '?'})`;
  return `exit code ${e.code}`;
}

/** The one block the user reads after a failure: who failed first, how, and the end of its log. */
export function formatRootCause(o: {
  first: WorkerExit;
  worldSize: number;
  oom?: string;
  tail: string[];
  attempt: number;
  maxRestarts: number;
}): string {
  const { first: e } = o;
  const lines = [
    '======================================== root cause ========================================',
    `first failure: rank ${e.rank} (local rank ${e.localRank}) of ${o.worldSize}, pid ${e.pid ?? '-'}`,
    `how it ended:  ${describeEnd(e)}${o.oom ? ` -- killed by the kernel's OOM killer (${o.oom})` : ''}`,
    `ran for:       ${formatDuration(e.endedAt - e.startedAt)}`,
    `attempt:       ${o.attempt + 1} of ${o.maxRestarts + 1}`,
    `log:           ${e.logPath}`,
    `---- last ${o.tail.length} lines of ${e.logPath} ----`,
    ...o.tail,
    '=============================================================================================',
  ];
  return lines.join('\n');
}
