/**
 * What a worker's shim does (launcher/shim.ts is its entry point; why a shim at all is explained there), as a
 * function over the few things it touches, so that it can be tested without being a process group leader:
 * start the worker, report its pid and how it ended on the lifeline, clear the worker's left-over children after
 * it ends, and clear the whole group the moment the lifeline closes without the worker having ended (the
 * launcher died).
 */
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import * as os from 'node:os';
import { encodeShimMessage, type ShimMessage } from './shim_protocol.js';

/** The worker program as the shim sees it: a ChildProcess's events and pid. */
export interface ShimChild extends EventEmitter {
  readonly pid?: number;
}

export interface ShimIo {
  /** the worker program's name, for the spawn error */
  program: string;
  lifeline: Duplex;
  start(): ShimChild;
  /** live members of the shim's process group, the shim itself not counted */
  othersInGroup(): number;
  /** signal the shim's whole process group (the shim ignores SIGTERM/SIGINT/SIGHUP; see shim.ts) */
  killGroup(signal: NodeJS.Signals): void;
  exit(code: number): void;
}

export interface ShimTimings {
  /** how long descendants get between SIGTERM and SIGKILL once the launcher is gone (the guarantee is 5 s) */
  orphanGraceMs: number;
  /** how long a finished worker's left-over children get before SIGKILL */
  leftoverGraceMs: number;
  pollMs: number;
}

export const SHIM_TIMINGS: ShimTimings = { orphanGraceMs: 2000, leftoverGraceMs: 1000, pollMs: 50 };

/** The shell's exit code for how the worker ended: its code, or 128 + its signal's number. */
export function shimExitCode(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0);
}

export function runShim(io: ShimIo, timings: ShimTimings = SHIM_TIMINGS): void {
  const { lifeline } = io;
  let launcherGone = false;
  /** set once the worker is reported and cleaned up, so closing the lifeline ourselves is not the launcher's death */
  let finished = false;

  const report = (msg: ShimMessage) =>
    new Promise<void>((resolve) => {
      if (launcherGone || lifeline.destroyed) return resolve();
      lifeline.write(encodeShimMessage(msg), () => resolve());
    });

  /** SIGTERM the rest of the group, then SIGKILL it (this shim included) if anything is left after the grace. */
  const clearLeftovers = async () => {
    if (io.othersInGroup() === 0) return;
    io.killGroup('SIGTERM');
    const deadline = Date.now() + timings.leftoverGraceMs;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, timings.pollMs));
      if (io.othersInGroup() === 0) return;
    }
    io.killGroup('SIGKILL');
  };

  const onLauncherGone = () => {
    if (launcherGone || finished) return;
    launcherGone = true;
    io.killGroup('SIGTERM');
    setTimeout(() => io.killGroup('SIGKILL'), timings.orphanGraceMs);
  };
  lifeline.on('end', onLauncherGone);
  lifeline.on('close', onLauncherGone);
  lifeline.on('error', onLauncherGone);
  lifeline.resume();

  const child = io.start();
  child.on('spawn', () => void report({ kind: 'started', pid: child.pid! }));
  const finish = (code: number) => {
    finished = true;
    lifeline.destroy();
    io.exit(code);
  };
  child.on('error', (e: Error) => {
    void report({ kind: 'spawnError', error: `${io.program}: ${e.message}` }).then(() => finish(127));
  });
  child.on('exit', (code: number | null, signal: NodeJS.Signals | null) => {
    void (async () => {
      await report({ kind: 'exited', code, signal });
      await clearLeftovers();
      finish(shimExitCode(code, signal));
    })();
  });
}
