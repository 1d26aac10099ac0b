/**
 * How to watch the workers: start each one under its shim (launcher/shim.ts) in its own process group, learn
 * its pid and exit status over the lifeline socket the moment they happen (events, no polling), and signal
 * whole groups.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { WorkerExit } from './failure.js';
import { failed } from './failure.js';
import type { WorkerOutput } from './logs.js';
import { ShimMessageReader } from './shim_protocol.js';

const SHIM = fileURLToPath(new URL('./shim.js', import.meta.url));

export interface WorkerLaunch {
  rank: number;
  localRank: number;
  program: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** written to the worker's fd 3, then the pipe is closed */
  secretLine?: string;
  output: WorkerOutput;
}

export class RunningWorker {
  readonly shim: ChildProcess;
  /** the worker program's pid, once the shim reports it (undefined if it never started) */
  readonly pid: Promise<number | undefined>;
  readonly exited: Promise<WorkerExit>;
  private done = false;

  constructor(readonly launch: WorkerLaunch) {
    const startedAt = Date.now();
    // detached: the shim becomes the leader of a new process group (and session), which the worker and its
    // children join; a terminal's Ctrl-C therefore reaches only the launcher, which decides what to forward.
    this.shim = spawn(process.execPath, [SHIM, launch.program, ...launch.args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
      env: launch.env,
    });
    const secret = this.shim.stdio[3] as net.Socket;
    secret.on('error', () => {}); // a worker that exits before reading its secret is reported by its exit status
    secret.end(launch.secretLine ?? '');
    const lifeline = this.shim.stdio[4] as net.Socket;
    const out = launch.output;
    this.shim.stdout!.on('data', (c: Buffer) => out.write('stdout', c));
    this.shim.stderr!.on('data', (c: Buffer) => out.write('stderr', c));

    let reportedPid: number | undefined;
    let status: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: string | undefined;
    let resolvePid!: (pid: number | undefined) => void;
    this.pid = new Promise((r) => (resolvePid = r));
    const reader = new ShimMessageReader();
    lifeline.on('error', () => {});
    lifeline.on('data', (c: Buffer) => {
      const { messages, error } = reader.push(c);
      for (const msg of messages) {
        if (msg.kind === 'started') {
          reportedPid = msg.pid;
          resolvePid(msg.pid);
        } else if (msg.kind === 'spawnError') spawnError = msg.error;
        else status = { code: msg.code, signal: msg.signal };
      }
      // how the worker ends still comes from the shim's own exit; say why the report is missing
      if (error)
        out.write(
          'stderr',
          Buffer.from(`launch: rank ${launch.rank}: ${error.message}; the rest of its lifeline is ignored\n`),
        );
    });

    const ended = (emitter: NodeJS.EventEmitter, event: string) =>
      new Promise<void>((r) => emitter.once(event, () => r()));
    const shimExit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      this.shim.once('exit', (code, signal) => r({ code, signal })),
    );
    // The lifeline closes when the shim exits; the output pipes may be held open by a descendant that left the
    // group, so after the shim's exit they get a short time to drain and no more.
    const lifelineClosed = ended(lifeline, 'close');
    const drained = Promise.all([ended(this.shim.stdout!, 'end'), ended(this.shim.stderr!, 'end')]);
    this.exited = (async () => {
      const shimEnd = await shimExit;
      await Promise.race([lifelineClosed, new Promise((r) => setTimeout(r, 1000))]);
      await Promise.race([drained, new Promise((r) => setTimeout(r, 500))]);
      this.done = true;
      resolvePid(reportedPid);
      out.flush();
      // Without a status line the shim itself was killed (SIGKILL to the group): the worker died the same way.
      const end = status ?? shimEnd;
      return {
        rank: launch.rank,
        localRank: launch.localRank,
        pid: reportedPid,
        code: end.code,
        signal: end.signal,
        spawnError,
        startedAt,
        endedAt: Date.now(),
        logPath: out.logPath,
      };
    })();
  }

  get running(): boolean {
    return !this.done;
  }

  /** Signal the worker's whole process group (worker, its children, the shim). */
  signal(sig: NodeJS.Signals): void {
    if (this.done || this.shim.pid === undefined) return;
    try {
      process.kill(-this.shim.pid, sig);
    } catch {
      /* the group is already empty */
    }
  }
}

/** One attempt: all local workers started together. */
export class Attempt {
  readonly workers: RunningWorker[];
  /** the first worker to fail, or null once all have exited 0 */
  readonly firstFailure: Promise<WorkerExit | null>;
  readonly allExited: Promise<WorkerExit[]>;

  constructor(launches: WorkerLaunch[]) {
    this.workers = launches.map((l) => new RunningWorker(l));
    this.allExited = Promise.all(this.workers.map((w) => w.exited));
    this.firstFailure = new Promise((resolve) => {
      for (const w of this.workers) void w.exited.then((e) => failed(e) && resolve(e));
      void this.allExited.then(() => resolve(null));
    });
  }

  signalAll(sig: NodeJS.Signals): void {
    for (const w of this.workers) w.signal(sig);
  }

  /** SIGTERM every group, SIGKILL what is left after `graceMs`; resolves when every worker has exited. */
  async terminate(graceMs: number): Promise<WorkerExit[]> {
    this.signalAll('SIGTERM');
    // a stopped (SIGSTOP, Ctrl-Z) worker only acts on SIGTERM once continued
    this.signalAll('SIGCONT');
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
    await Promise.race([this.allExited, graceOver.then(() => this.signalAll('SIGKILL'))]);
    clearTimeout(timer);
    return this.allExited;
  }
}
