/** Starting the real `launch` CLI from tests and waiting on what its workers record. */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../launcher/cli.js', import.meta.url));
export const TEST_WORKER = fileURLToPath(new URL('./launcher_worker.js', import.meta.url));
export const COLLECTIVE_WORKER = fileURLToPath(new URL('./launcher_collective_worker.js', import.meta.url));

export interface LaunchResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface LaunchRun {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  done: Promise<LaunchResult>;
}

export function startLaunch(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): LaunchRun {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<LaunchResult>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    done,
  };
}

export function launch(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<LaunchResult> {
  return startLaunch(args, opts).done;
}

/** Run any command to its end and collect its output (e.g. the CLI under a shell's umask, or as another user). */
export function runCollect(
  command: string,
  args: string[],
  opts: { uid?: number; gid?: number } = {},
): Promise<LaunchResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}

/** Poll until `probe` returns a value (tests only: the launcher itself never polls). */
export async function waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface WorkerRecord {
  pid: number;
  grandchildPid?: number;
  secret?: string;
  env: Record<string, string>;
}

/** The records of every rank of one attempt, once all `n` are written. */
export function records(dir: string, n: number, restart = 0): WorkerRecord[] | undefined {
  const files = Array.from({ length: n }, (_, r) => path.join(dir, `rank${r}.restart${restart}.json`));
  if (!files.every((f) => fs.existsSync(f))) return undefined;
  return files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as WorkerRecord);
}

/** The job id the launcher printed in its first line. */
export function jobIdOf(stderr: string): string | undefined {
  return /\[launch\] job (\S+):/.exec(stderr)?.[1];
}
