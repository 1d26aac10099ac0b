/**
 * metrics.jsonl: one JSON object per line, written by rank 0 next to the checkpoints and read by `launch plot`.
 * A line per logged step (the same figures as the log line, machine-readable) and one per pass end.
 */
import { DataError } from './errors.js';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface MetricsRecord {
  /** absent in a line = 'train' */
  mode: 'train' | 'valid';
  /** true on the record of a whole pass (the END line's means); absent on step records */
  end?: boolean;
  epoch: number;
  /** step within the epoch (the END record: the number of steps of the pass) */
  step: number;
  /** global iteration t (the LR schedule's position); train records */
  iteration?: number;
  loss: number;
  /** absent when mixup/cutmix hides train accuracy */
  top1?: number;
  top5?: number;
  /** the lr used for this step (0 on valid records) */
  lr: number;
  batch_cost: number;
  reader_cost: number;
  /** this step's time split, seconds (train step records): waiting for data, forward+backward, gradient
   *  all-reduce (including waiting for the slowest worker), optimizer update */
  data_s?: number;
  compute_s?: number;
  allreduce_s?: number;
  optimizer_s?: number;
  ips: number;
  /** unix time in seconds when the record was written */
  time?: number;
}

export class MetricsError extends DataError {}

/** Appends one line per record, synchronously, so a crashed run keeps every record written before it. */
export class MetricsWriter {
  private fd: number | undefined;

  /**
   * `append`: keep the existing lines (a resumed run); otherwise the file starts empty. With `keepUpToEpoch`, the
   * kept lines are those of epochs up to it (what the checkpoint resumed from had seen), and a line cut off by a
   * crash is dropped, so the appended records continue a well-formed file.
   */
  constructor(
    readonly file: string,
    opts: { append?: boolean; keepUpToEpoch?: number } = {},
  ) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    if (opts.append && fs.existsSync(file)) {
      const kept = fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => {
          try {
            const r = JSON.parse(line) as MetricsRecord;
            return opts.keepUpToEpoch === undefined || r.epoch <= opts.keepUpToEpoch;
          } catch {
            return false; // empty or cut off
          }
        });
      fs.writeFileSync(file, kept.map((l) => `${l}\n`).join(''));
    }
    this.fd = fs.openSync(file, opts.append ? 'a' : 'w');
  }

  write(record: MetricsRecord): void {
    if (this.fd === undefined) throw new MetricsError(`metrics file ${this.file} is closed`);
    fs.writeSync(this.fd, `${JSON.stringify({ time: Date.now() / 1000, ...record })}\n`);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

const REQUIRED = ['epoch', 'step', 'loss'] as const;
const OPTIONAL = [
  'iteration',
  'top1',
  'top5',
  'lr',
  'batch_cost',
  'reader_cost',
  'data_s',
  'compute_s',
  'allreduce_s',
  'optimizer_s',
  'ips',
  'time',
] as const;

/**
 * Read a metrics.jsonl (epoch, step and loss required; the other figures may be missing or null). A malformed line is an error naming the file and line, except an unterminated last
 * line, which is what a run killed mid-write leaves behind: it is dropped.
 */
export function readMetrics(file: string): MetricsRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new MetricsError(
      `cannot read metrics file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const lines = text.split('\n');
  const out: MetricsRecord[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const lastUnterminated = i === lines.length - 1;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      if (lastUnterminated) return;
      throw new MetricsError(`${file} line ${i + 1}: not a JSON object: ${line.slice(0, 80)}`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      throw new MetricsError(`${file} line ${i + 1}: not a JSON object`);
    const r = obj as Record<string, unknown>;
    for (const k of [...REQUIRED, ...OPTIONAL]) {
      const optional = (OPTIONAL as readonly string[]).includes(k);
      if ((optional && (r[k] === undefined || r[k] === null)) || typeof r[k] === 'number') continue;
      throw new MetricsError(`${file} line ${i + 1}: key '${k}' must be a number, got ${JSON.stringify(r[k])}`);
    }
    const mode = r.mode ?? 'train';
    if (mode !== 'train' && mode !== 'valid')
      throw new MetricsError(`${file} line ${i + 1}: mode must be 'train' or 'valid', got ${JSON.stringify(mode)}`);
    out.push({ ...(r as unknown as MetricsRecord), mode });
  });
  return out;
}
