/**
 * The supervisor shim: one per worker, `node shim.js <program> [args...]`, started by the launcher as the leader
 * of a new process group (detached), with
 *   fd 3: the job-secret pipe, handed on to the worker as its fd 3 untouched;
 *   fd 4: the lifeline, a socket to the launcher. The shim reports on it the worker's pid and, later, its exit
 *         status (JSON lines), and reads it only to notice end-of-file.
 *
 * Why a shim: the workers must die when the launcher dies, even by SIGKILL, grandchildren (data loaders, a
 * shell's children) included. Linux's PR_SET_PDEATHSIG is per process, covers no grandchild, and is out of
 * Node's reach without native code; polling the parent pid costs a delay and a timer in every worker and needs
 * the worker's cooperation (`launch run -- any program` has none). A pipe end closes in the kernel the instant
 * its owner dies, however it dies, so the shim learns it at once and signals the whole process group, which
 * every descendant of the worker belongs to unless it leaves it on purpose (setsid).
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import { groupMembers } from './proc.js';

/** How long descendants get between SIGTERM and SIGKILL once the launcher is gone (the guarantee is 5 s). */
const ORPHAN_GRACE_MS = 2000;
/** How long a finished worker's left-over children get before SIGKILL. */
const LEFTOVER_GRACE_MS = 1000;

const [program, ...args] = process.argv.slice(2);
const pgid = process.pid;
const lifeline = new net.Socket({ fd: 4, readable: true, writable: true });
let launcherGone = false;
/** set once the worker is reported and cleaned up, so closing the lifeline ourselves is not the launcher's death */
let finished = false;

function report(msg: object): Promise<void> {
  return new Promise((resolve) => {
    if (launcherGone || lifeline.destroyed) return resolve();
    lifeline.write(`${JSON.stringify(msg)}\n`, () => resolve());
  });
}

function othersInGroup(): number {
  return groupMembers(pgid).filter((p) => p.pid !== process.pid).length;
}

function killGroup(signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* group already empty */
  }
}

/** SIGTERM the rest of the group, then SIGKILL it (this shim included) if anything is left after `graceMs`. */
async function clearGroup(graceMs: number): Promise<void> {
  if (othersInGroup() === 0) return;
  killGroup('SIGTERM'); // the shim ignores SIGTERM (handler below)
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (othersInGroup() === 0) return;
  }
  killGroup('SIGKILL');
}

// Signals sent to the group (the launcher's Ctrl-C forwarding) are for the worker to act on; the shim stays to
// report how the worker ended.
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => {});

const child = spawn(program, args, { stdio: ['inherit', 'inherit', 'inherit', 3] });

child.on('spawn', () => void report({ pid: child.pid }));
child.on('error', (e) => {
  void report({ spawnError: `${program}: ${e.message}` }).then(() => process.exit(127));
});
child.on('exit', (code, signal) => {
  void (async () => {
    await report({ code, signal });
    await clearGroup(LEFTOVER_GRACE_MS);
    finished = true;
    lifeline.destroy();
    const signum = signal ? os.constants.signals[signal] : 0;
    process.exit(code ?? 128 + signum);
  })();
});

function onLauncherGone(): void {
  if (launcherGone || finished) return;
  launcherGone = true;
  killGroup('SIGTERM');
  setTimeout(() => killGroup('SIGKILL'), ORPHAN_GRACE_MS);
}
lifeline.on('end', onLauncherGone);
lifeline.on('close', onLauncherGone);
lifeline.on('error', onLauncherGone);
lifeline.resume();
