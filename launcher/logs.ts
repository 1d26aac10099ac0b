/**
 * The log directory: workerlog.N per local worker, endpoints.log, launch.log, and what reaches the terminal.
 * Paddle appends a new run's lines into the old files; here an earlier run's logs are moved aside first, and a
 * lock file keeps a second launcher from moving the logs of a job that is still running.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import winston from 'winston';
import { LaunchError } from './plan.js';

const LOCK = '.launch.lock';
const OWN_FILE = /^(workerlog\.\d+|endpoints\.log|launch\.log)$/;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LogDir {
  dir: string;
  /** where the earlier run's logs went, if there were any */
  movedAsideTo?: string;
  workerLogPath(localRank: number): string;
  release(): void;
}

/** Create (or take over) a log directory for this run. */
export function openLogDir(dir: string): LogDir {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new LaunchError(`--log_dir ${dir}: cannot create it (${(e as Error).message})`);
  }
  const lockPath = path.join(dir, LOCK);
  for (let tries = 0; ; tries++) {
    try {
      fs.writeFileSync(lockPath, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || tries > 0)
        throw new LaunchError(`--log_dir ${dir}: cannot lock it (${(e as Error).message})`);
      const owner = Number(fs.readFileSync(lockPath, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && pidAlive(owner)) {
        throw new LaunchError(
          `--log_dir ${dir} is in use by the launcher with pid ${owner}; give this job its own --log_dir`,
        );
      }
      fs.rmSync(lockPath, { force: true }); // stale: its launcher is gone
    }
  }
  const earlier = fs.readdirSync(dir).filter((n) => OWN_FILE.test(n));
  let movedAsideTo: string | undefined;
  if (earlier.length > 0) {
    // Name the folder after the earlier run's start (launch.log's birth, else its latest file) so runs sort by time.
    const times = earlier
      .map((n) => fs.statSync(path.join(dir, n)))
      .map((s) => (s.birthtimeMs > 0 ? s.birthtimeMs : s.mtimeMs));
    const stamp = new Date(Math.min(...times)).toISOString().replace(/[:]/g, '-').replace(/\..*/, '');
    let target = path.join(dir, 'previous', stamp);
    for (let i = 1; fs.existsSync(target); i++) target = path.join(dir, 'previous', `${stamp}.${i}`);
    fs.mkdirSync(target, { recursive: true });
    for (const n of earlier) fs.renameSync(path.join(dir, n), path.join(target, n));
    movedAsideTo = target;
  }
  return {
    dir,
    movedAsideTo,
    workerLogPath: (localRank) => path.join(dir, `workerlog.${localRank}`),
    release: () => {
      try {
        if (fs.readFileSync(lockPath, 'utf8').trim() === String(process.pid)) fs.rmSync(lockPath, { force: true });
      } catch {
        /* already gone */
      }
    },
  };
}

/**
 * The launcher's own log lines: to the terminal (stderr, so a worker's stdout stays clean for pipes) and to
 * launch.log. The file transport writes synchronously-ordered through one stream; callers await `closeLogger`.
 */
export function createLaunchLogger(dir: string): winston.Logger {
  return winston.createLogger({
    level: 'info',
    transports: [
      new winston.transports.Console({
        stderrLevels: ['error', 'warn', 'info'],
        format: winston.format.printf((i) => `[launch] ${String(i.message)}`),
      }),
      new winston.transports.File({
        filename: path.join(dir, 'launch.log'),
        format: winston.format.combine(
          winston.format.timestamp(),
          winston.format.printf((i) => `${String(i.timestamp)} ${i.level.toUpperCase()} ${String(i.message)}`),
        ),
      }),
    ],
  });
}

/** Flush launch.log before the process exits. */
export function closeLogger(logger: winston.Logger): Promise<void> {
  return new Promise((resolve) => {
    const file = logger.transports.find((t) => t instanceof winston.transports.File);
    if (!file) return resolve();
    file.on('finish', () => resolve());
    logger.end();
    setTimeout(resolve, 2000).unref();
  });
}

export function writeEndpointsLog(dir: string, jobId: string, endpoints: string[]): void {
  const lines =
    endpoints.length === 0
      ? ['(a single worker: no endpoints, no sockets)']
      : endpoints.map((e, rank) => `rank ${rank}: ${e}`);
  fs.writeFileSync(
    path.join(dir, 'endpoints.log'),
    [`job ${jobId}`, `PADDLE_TRAINER_ENDPOINTS=${endpoints.join(',')}`, ...lines, ''].join('\n'),
  );
}

/** Lines that count as warnings or errors in a worker's stdout (its winston lines, tracebacks). */
const WARN_OR_ERROR = /\b(warn(ing)?|error|err!|fatal|traceback|exception|abort(ed)?)\b/i;

/**
 * One worker's output: every byte into workerlog.N (appended synchronously, so the file is complete the moment
 * the worker's exit is seen and the root-cause block can tail it), and to the terminal rank 0's output as it
 * arrives, plus the other ranks' stderr and warning/error lines with a "[rank N]" prefix.
 */
export class WorkerOutput {
  private fd: number;
  private partial = { stdout: '', stderr: '' };

  constructor(
    readonly logPath: string,
    readonly rank: number,
    private terminal: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = process,
  ) {
    this.fd = fs.openSync(logPath, 'a');
  }

  /** A line of the launcher's own in the worker's log (start, restart and exit markers). */
  mark(line: string): void {
    fs.writeSync(this.fd, `===== [launch] ${line} =====\n`);
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    fs.writeSync(this.fd, chunk);
    if (this.rank === 0) {
      this.terminal[stream].write(chunk);
      return;
    }
    const text = this.partial[stream] + chunk.toString('utf8');
    const lines = text.split('\n');
    this.partial[stream] = lines.pop() ?? '';
    for (const line of lines) this.forward(stream, line);
  }

  /** Forward a last line without newline once the stream ended. */
  flush(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream] !== '') this.forward(stream, this.partial[stream]);
      this.partial[stream] = '';
    }
  }

  private forward(stream: 'stdout' | 'stderr', line: string): void {
    if (stream === 'stderr' || WARN_OR_ERROR.test(line)) this.terminal.stderr.write(`[rank ${this.rank}] ${line}\n`);
  }

  close(): void {
    this.flush();
    fs.closeSync(this.fd);
  }
}

/** The last `n` lines of a file (reads at most its last 256 KiB). */
export function tailLines(file: string, n: number): string[] {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return [];
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines.slice(-n);
  } finally {
    fs.closeSync(fd);
  }
}
