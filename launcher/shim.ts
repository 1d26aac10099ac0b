/**
 * The supervisor shim: one per worker, `node shim.js <program> [args...]`, started by the launcher as the leader
 * of a new process group (detached), with
 *   fd 3: the job-secret pipe, handed on to the worker as its fd 3 untouched;
 *   fd 4: the lifeline, a socket to the launcher. The shim reports on it the worker's pid and, later, its exit
 *         status (launcher/shim_protocol.ts), and reads it only to notice end-of-file.
 * What it does is launcher/shim_logic.ts; this file wires it to the real process.
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
import { groupMembers } from './proc.js';
import { runShim } from './shim_logic.js';

const [program, ...args] = process.argv.slice(2);
const pgid = process.pid;

// Signals sent to the group (the launcher's Ctrl-C forwarding) are for the worker to act on; the shim stays to
// report how the worker ended.
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => {});

runShim({
  program,
  lifeline: new net.Socket({ fd: 4, readable: true, writable: true }),
  start: () => spawn(program, args, { stdio: ['inherit', 'inherit', 'inherit', 3] }),
  othersInGroup: () => groupMembers(pgid).filter((p) => p.pid !== process.pid).length,
  killGroup: (signal) => {
    try {
      process.kill(-pgid, signal);
    } catch {
      /* group already empty */
    }
  },
  exit: (code) => process.exit(code),
});
