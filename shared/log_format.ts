/**
 * PaddleClas 2.0's log lines, character for character (../shared/reference/paddleclas.md, "Logs"): users grep
 * and parse them, so field widths, rounding and even the END line's double space are kept. Each line is a pure
 * function; createWorkerLogger adds PaddleClas's `YYYY-MM-DD HH:MM:SS INFO: ` prefix (Python logging's
 * '%(asctime)s %(levelname)s: %(message)s' with datefmt '%Y-%m-%d %H:%M:%S', local time).
 */
import winston from 'winston';

/**
 * Python's '{:.Nf}'. JS toFixed rounds an exact tie half up, Python half to even on the double's exact value:
 * 1/64 = 0.015625 is 0.01563 in JS but 0.01562 in PaddleClas's logs (the reference's top5 example).
 */
export function pyFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  let s = a.toFixed(digits);
  if (a < 1e21) {
    // toFixed(100) is the exact decimal expansion for every double in this range whose digits matter here
    const full = a.toFixed(100);
    const cut = full.indexOf('.') + 1 + digits; // index of the first dropped digit
    if (full[cut] === '5' && /^0*$/.test(full.slice(cut + 1))) {
      const kept = full.slice(0, cut).replace(/\.$/, '');
      const last = kept.replace('.', '').slice(-1);
      if (Number(last) % 2 === 0) s = kept; // round half to even: the truncation is already even
    }
  }
  return (neg ? '-' : '') + s;
}

/** Python's '{:<Nd}'. */
function leftInt(n: number, width: number): string {
  return String(Math.trunc(n)).padEnd(width);
}

export type PassMode = 'train' | 'valid';

export interface StepFields {
  epoch: number;
  step: number;
  /** current batch; omitted (with top5) when mixup/cutmix is on, as PaddleClas does */
  top1?: number;
  top5?: number;
  loss: number;
  /** the lr used for this step; validation lines print 0 */
  lr?: number;
  /** running means of the batch and reader times, seconds */
  batchCost: number;
  readerCost: number;
  /** images per second: per-worker batch / mean batch_cost */
  ips: number;
  /** label of the second accuracy, `top${topk}`; default 5 */
  topk?: number;
}

/** `top1: x, top5: y, loss: z,` — the accuracy meters only when given. */
function accuracyAndLoss(f: { top1?: number; top5?: number; loss: number; topk?: number }): string[] {
  const parts: string[] = [];
  if (f.top1 !== undefined) parts.push(`top1: ${pyFixed(f.top1, 5)},`);
  if (f.top5 !== undefined) parts.push(`top${f.topk ?? 5}: ${pyFixed(f.top5, 5)},`);
  parts.push(`loss: ${pyFixed(f.loss, 5).padStart(7)},`);
  return parts;
}

function stepLine(mode: PassMode, f: StepFields): string {
  const meters = [
    ...accuracyAndLoss(f),
    `lr: ${pyFixed(f.lr ?? 0, 6)},`,
    `batch_cost: ${pyFixed(f.batchCost, 5)} s,`,
    `reader_cost: ${pyFixed(f.readerCost, 5)} s,`,
  ];
  return `epoch:${leftInt(f.epoch, 3)}, ${mode} step:${leftInt(f.step, 4)}, ${meters.join(' ')} ips: ${pyFixed(f.ips, 5)} images/sec.`;
}

/** `epoch:0  , train step:10  , top1: 0.00000, top5: 0.01562, loss: 7.15727, lr: 0.050000, batch_cost: ...` */
export function trainLine(f: StepFields): string {
  return stepLine('train', f);
}

/** Same as trainLine with `valid step:`; the lr field is always `lr: 0.000000,` as in PaddleClas. */
export function validLine(f: Omit<StepFields, 'lr'>): string {
  return stepLine('valid', { ...f, lr: 0 });
}

export interface EndFields {
  epoch: number;
  mode: PassMode;
  top1?: number;
  top5?: number;
  loss: number;
  /** means over the pass (after the first 10 steps, as the step lines) */
  batchCost: number;
  readerCost: number;
  /** sum of the batch times */
  batchCostSum: number;
  /** per-worker batch * count / batchCostSum */
  ips: number;
  topk?: number;
}

/**
 * `END epoch:0   valid top1: 0.75878, top5: 0.92718, loss: 0.96913,  batch_cost: 0.15702 s, ...`
 * The double space is PaddleClas's lr meter, whose mean prints as an empty string.
 */
export function endLine(f: EndFields): string {
  const meters = [
    ...accuracyAndLoss(f),
    '', // lr
    `batch_cost: ${pyFixed(f.batchCost, 5)} s,`,
    `reader_cost: ${pyFixed(f.readerCost, 5)} s,`,
    `batch_cost_sum: ${pyFixed(f.batchCostSum, 5)} s,`,
  ];
  return `END epoch:${leftInt(f.epoch, 3)} ${f.mode} ${meters.join(' ')} ips: ${pyFixed(f.ips, 5)} images/sec.`;
}

/** `The best top1 acc 0.75878, in epoch: 0` */
export function bestLine(acc: number, epoch: number): string {
  return `The best top1 acc ${pyFixed(acc, 5)}, in epoch: ${Math.trunc(epoch)}`;
}

const PY_LEVELS: Record<string, string> = { error: 'ERROR', warn: 'WARNING', info: 'INFO', debug: 'DEBUG' };

/** `2021-03-01 09:05:07 INFO: ` in local time. */
export function timestampPrefix(date: Date = new Date(), level = 'INFO'): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const d = `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}`;
  const t = `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
  return `${d} ${t} ${level}: `;
}

export interface WorkerLoggerOptions {
  rank: number;
  /** also write to this file (truncated first: appending across runs is a known paddle launch fault) */
  logFile?: string;
  /**
   * Default: 'info' on rank 0, 'warn' elsewhere — in PaddleClas only rank 0 writes the step lines, the other
   * workerlog files hold only warnings and tracebacks.
   */
  level?: 'error' | 'warn' | 'info' | 'debug';
}

/**
 * A winston logger whose lines carry PaddleClas's prefix. It prints to stdout only (the launcher captures each
 * worker's stdout into workerlog.N), plus logFile when given.
 */
export function createWorkerLogger(opts: WorkerLoggerOptions): winston.Logger {
  const format = winston.format.printf(
    (info) =>
      `${timestampPrefix(new Date(), PY_LEVELS[info.level] ?? info.level.toUpperCase())}${String(info.message)}`,
  );
  const transports: winston.transport[] = [new winston.transports.Console()];
  if (opts.logFile) transports.push(new winston.transports.File({ filename: opts.logFile, options: { flags: 'w' } }));
  return winston.createLogger({ level: opts.level ?? (opts.rank === 0 ? 'info' : 'warn'), format, transports });
}
